# Inbound B2MML with files and xmllint: the shared examples (copied to
# test/b2mml/examples) are accepted and the invalid ones rejected for their
# reason; every XML document receive_b2mml produces validates against the
# B2MML V0600 wrapper schema (xmllint --schema, exit status and verdict line).
use strict;
use warnings;
use File::Basename qw(dirname basename);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib dirname(__FILE__);
use MfgTest;

my $b2mml = File::Spec->rel2abs(dirname(__FILE__) . '/../b2mml');
my $xsd = "$b2mml/xsd/mfgsync-b2mml-V0600.xsd";
my $tmp = PostgreSQL::Test::Utils::tempdir('b2mml_inbound');

my $node = mfg_cluster('b2mml_inbound', "mfgsync.b2mml_schema = '$xsd'\n");
$node->safe_psql('postgres', q{
CREATE TABLE response (id text PRIMARY KEY, order_code text, started timestamptz,
                       ended timestamptz, state text, cancelled boolean NOT NULL DEFAULT false);
CREATE TABLE segment (id text PRIMARY KEY, response_id text, operation text,
                      produced numeric, produced_lot text, consumed numeric, scrap int, state text);
CREATE TABLE work_order (id text PRIMARY KEY, product text, quantity numeric, unit text,
                         machine text, earliest timestamptz, latest timestamptz);
CREATE TABLE operation (id text PRIMARY KEY, order_id text, duration interval, state text);
CREATE TABLE material (code text PRIMARY KEY, name text, base_unit text, net_weight numeric,
                       class text);
INSERT INTO material VALUES ('BRKT-7', 'Mounting bracket type 7, zinc plated', 'EA', 0.245, 'FINISHED-GOODS');
SELECT mfgsync.map_inbound('ProductionResponse', 'response',
    '{"id": "ID", "order_code": "ProductionRequestID", "started": "StartTime", "ended": "EndTime",
      "state": "ResponseState"}', cancelled_column => 'cancelled');
SELECT mfgsync.map_inbound('SegmentResponse', 'segment',
    '{"id": "ID", "response_id": "../ID", "operation": "ProcessSegmentID",
      "produced": "MaterialActual[MaterialUse=Produced]/Quantity/QuantityString",
      "produced_lot": "MaterialActual[MaterialUse=Produced]/MaterialLotID",
      "consumed": "MaterialActual[MaterialUse=Consumed]/Quantity/QuantityString",
      "scrap": "ProductionData[ID=ScrapCount]/Value/ValueString", "state": "SegmentState"}');
SELECT mfgsync.map_inbound('ProductionRequest', 'work_order',
    '{"id": "ID",
      "product": "SegmentRequirement/MaterialRequirement[MaterialUse=Produced]/MaterialDefinitionID",
      "quantity": "SegmentRequirement/MaterialRequirement[MaterialUse=Produced]/Quantity/QuantityString",
      "unit": "SegmentRequirement/MaterialRequirement[MaterialUse=Produced]/Quantity/UnitOfMeasure",
      "machine": "SegmentRequirement/EquipmentRequirement/EquipmentID",
      "earliest": "SegmentRequirement/EarliestStartTime", "latest": "SegmentRequirement/LatestEndTime"}');
SELECT mfgsync.map_inbound('SegmentRequirement', 'operation',
    '{"id": "ID", "order_id": "../ID", "duration": "Duration", "state": "SegmentState"}');
SELECT mfgsync.map_inbound('MaterialDefinition', 'material',
    '{"code": "ID", "name": "Description", "class": "MaterialClassID",
      "base_unit": "MaterialDefinitionProperty[ID=BaseUnitOfMeasure]/Value/ValueString",
      "net_weight": "MaterialDefinitionProperty[ID=NetWeight]/Value/ValueString"}');
});

# receive(file or text): the answer
my $n = 0;
my @produced;    # every XML answer, for xmllint

sub receive
{
	my ($message) = @_;
	my $answer = $node->safe_psql('postgres',
		'SELECT mfgsync.receive_b2mml($m$' . $message . '$m$)');
	if ($answer =~ /^\s*</)
	{
		my $file = sprintf('%s/answer-%03d.xml', $tmp, ++$n);
		open(my $fh, '>', $file) or die "$file: $!";
		print $fh $answer;
		close $fh;
		push @produced, $file;
	}
	return $answer;
}

sub status_of
{
	my ($answer) = @_;
	return $1 if $answer =~ /actionCode="(\w+)"/;
	return $1 if $answer =~ /"\@actionCode":"(\w+)"/;
	return 'none';
}

sub description_of
{
	my ($answer) = @_;
	return $1 if $answer =~ m{<Description>(.*?)</Description>}s;
	return $1 if $answer =~ m{"Description":\[?"((?:[^"\\]|\\.)*)"};
	return '';
}

# the valid examples, in an order that makes sense for the staging tables
for my $name (qw(SyncProductionSchedule SyncProductionPerformance
	CancelProductionPerformance))
{
	my $answer = receive(slurp_file("$b2mml/examples/$name.xml"));
	is(status_of($answer), 'Accepted', "example $name.xml is accepted")
	  or diag description_of($answer);
	like($answer, qr{<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML-V0600">},
		"$name.xml is answered with a ConfirmBOD");
}
is($node->safe_psql('postgres',
		q{SELECT id || ' ' || product || ' ' || quantity || ' ' || unit || ' ' || machine FROM work_order}),
	'WO-100042 BRKT-7 500 EA PRESS-07',
	'the schedule example wrote its production request');
is($node->safe_psql('postgres', q{SELECT string_agg(id || ':' || state, ',' ORDER BY id) FROM operation}),
	'WO-100042-OP10:Released',
	'... and its segment requirements')
  or diag $node->safe_psql('postgres', 'TABLE operation');
is($node->safe_psql('postgres', q{SELECT id || ' ' || order_code || ' ' || cancelled FROM response}),
	'RESP-WO-100042-1 WO-100042 true',
	'the performance example wrote a response that the cancel example then marked');
is($node->safe_psql('postgres', q{SELECT count(*) FROM segment}), '0',
	'the cancel example deleted the segment response');

my $show = receive(slurp_file("$b2mml/examples/GetMaterialInformation.xml"));
like($show, qr{<ShowMaterialInformation xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="B2MML-V0600">},
	'GetMaterialInformation.xml is answered with ShowMaterialInformation');
like($show, qr{<ID>BRKT-7</ID>\s*<Description>Mounting bracket type 7, zinc plated</Description>},
	'... carrying the material from the staging table');

for my $name (qw(ConfirmBOD-Accepted ConfirmBOD-Rejected))
{
	my $answer = receive(slurp_file("$b2mml/examples/$name.xml"));
	like(description_of($answer), qr/^unknown original message:/,
		"example $name.xml passes every check and is looked up (it answers no message of ours)");
}

# the JSON renderings of the same examples (MESA's dialect): replays of the
# XML ones by BODID, answered in JSON with the same answer
for my $name (qw(SyncProductionPerformance CancelProductionPerformance))
{
	my $answer = receive(slurp_file("$b2mml/examples/json/$name.json"));
	like($answer, qr/^\{"ConfirmBOD":/, "json/$name.json is answered in JSON");
	is(status_of($answer), 'Accepted', "json/$name.json is accepted (a replay)");
}
like(receive(slurp_file("$b2mml/examples/json/GetMaterialInformation.json")),
	qr/"ShowMaterialInformation":.*"ID":"BRKT-7"/,
	'json/GetMaterialInformation.json is answered with ShowMaterialInformation in JSON');

# the invalid examples, each rejected for its own reason
my %reason = (
	'ConfirmBOD-with-releaseID' => qr/^invalid attribute: ConfirmBOD takes no attributes, found releaseID/,
	'SyncProductionPerformance-segment-id-order' => qr/^not valid B2MML V0600: Element 'ProcessSegmentID': This element is not expected/,
	'SyncProductionSchedule-confirmationcode-case' => qr/^invalid code: .*ConfirmationCode is "always"/,
	'SyncProductionSchedule-date-only' => qr/^bad date-time: .*CreationDateTime is "2024-05-06"/,
	'SyncProductionSchedule-no-releaseID' => qr/^missing releaseID/,
	'SyncProductionSchedule-quantity-as-text' => qr/^invalid quantity: .*Quantity has no QuantityString/,
	'SyncProductionSchedule-wrong-order' => qr/^not valid B2MML V0600: Element 'EquipmentRequirement': This element is not expected/);
for my $file (sort glob("$b2mml/examples/invalid/*.xml"))
{
	my $name = basename($file, '.xml');
	my $answer = receive(slurp_file($file));
	is(status_of($answer), 'Rejected', "invalid/$name.xml is rejected");
	like(description_of($answer), $reason{$name} // qr/^$/, "... saying why")
	  or diag description_of($answer);
}
is(scalar(grep { 1 } glob("$b2mml/examples/invalid/*.xml")), scalar(keys %reason),
	'every invalid example has its expected reason');

# rejections whose Descriptions carry markup and odd text stay valid XML
receive('<SyncProductionSchedule xmlns="http://www.mesa.org/xml/B2MML-V0600"><a>&amp;</b>');
receive('<Foo xmlns="urn:x">"quotes" & \'apostrophes\' ü € 𝄞</Foo>');
receive(q{<SyncProductionPerformance xmlns="http://www.mesa.org/xml/B2MML-V0600" releaseID="r"><ApplicationArea><Sender><LogicalID>&lt;MES&gt; &amp; "co"</LogicalID><ConfirmationCode>Always</ConfirmationCode></Sender><CreationDateTime>2024-05-06T14:05:12Z</CreationDateTime><BODID>ü-1</BODID></ApplicationArea><DataArea><Sync/><ProductionPerformance><ProductionResponse><ID>R-ü</ID><SegmentResponse><ID>S</ID><ProductionData><ID>ScrapCount</ID><Value><ValueString>&lt;x&gt;</ValueString></Value></ProductionData></SegmentResponse></ProductionResponse></ProductionPerformance></DataArea></SyncProductionPerformance>});

# every XML document produced above validates against the wrapper schema
ok(@produced >= 15, scalar(@produced) . ' XML answers to validate');
for my $file (@produced)
{
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ 'xmllint', '--noout', '--schema', $xsd, $file ],
		'>', \$stdout, '2>', \$stderr);
	ok($ok && $stderr =~ /\Q$file\E validates/,
		basename($file) . ' validates against mfgsync-b2mml-V0600.xsd')
	  or diag slurp_file($file) . "\n" . $stderr;
}

# the check really fails on an invalid document
{
	my $bad = "$tmp/bad.xml";
	open(my $fh, '>', $bad) or die;
	print $fh slurp_file($produced[0]) =~ s{<ApplicationArea>}{<ApplicationArea releaseID="x">}r;
	close $fh;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run([ 'xmllint', '--noout', '--schema', $xsd, $bad ],
		'>', \$stdout, '2>', \$stderr);
	ok(!$ok && $stderr =~ /fails to validate/, 'xmllint rejects a broken answer (the check can fail)');
}

$node->stop;
done_testing();
