# The readers of outside input are memcheck-clean: a single-user backend
# scans mfgsync_http foreign tables (rows with escapes, nested values, deeper
# paths, date-times, a malformed row) and takes B2MML messages in (XML and
# JSON, accepted and rejected), renders B2MML documents and converts them
# between dialects, all under valgrind; no error may point into mfgsync.so
# or be anything but PostgreSQL's known uninitialised WAL padding (see
# 003_valgrind.pl for what memcheck can see of palloc'd memory).
use strict;
use warnings;
use File::Basename;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib dirname(__FILE__);
use MfgTest;

my $examples = dirname(__FILE__) . '/../b2mml/examples';

# the pages the foreign tables read
my $www = PostgreSQL::Test::Utils::tempdir('www');
my $port = start_file_server($www);
{
	my @rows;
	for my $i (1 .. 2000)
	{
		push @rows, sprintf(
			'{"order_code":"PO-%d \\"q\\" \\u00e9\\ud83d\\ude00","qty":%d.5e0,'
			  . '"start":"2026-11-%02dT06:%02d:00.%03dZ","note":null,'
			  . '"ops":[{"machine":"M-%d","tags":["a",{"b":[1,2,{}]}]}],"ok":true}',
			$i, $i, $i % 28 + 1, $i % 60, $i % 1000, $i % 7);
	}
	open my $fh, '>:raw', "$www/orders.json" or die $!;
	print $fh '[' . join(",\n ", @rows) . ']';
	close $fh;
	open $fh, '>:raw', "$www/bad.json" or die $!;
	print $fh '[{"order_code":"ok"},{"order_code":"x\\q"}]';
	close $fh;
}

# a message as one SQL literal on one line (single-user mode ends a
# statement at a newline; XML and JSON do not need the line breaks)
sub literal
{
	my $text = slurp_file("$examples/$_[0]");
	$text =~ s/\s*\n\s*/ /g;
	$text =~ s/'/''/g;
	return "'$text'";
}

my $node = PostgreSQL::Test::Cluster->new('memcheck_read');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'mfgsync'");

my $sql = join("\n",
	"CREATE EXTENSION mfgsync;",
	"CREATE SERVER files FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url 'http://127.0.0.1:$port', retries '0');",
	"CREATE FOREIGN TABLE orders (order_code text, qty numeric, start timestamptz, note text, machine text OPTIONS (path 'ops[0].machine'), ok boolean, doc jsonb OPTIONS (path '\$')) SERVER files OPTIONS (path '/orders.json');",
	"CREATE FOREIGN TABLE bad (order_code text) SERVER files OPTIONS (path '/bad.json');",
	"SELECT count(*) AS scanned, count(DISTINCT machine) AS machines, sum(qty) AS qty FROM orders WHERE ok;",
	"SELECT count(*) FROM bad;",
	"CREATE TABLE resp (id text PRIMARY KEY, order_code text, state text);",
	"SELECT mfgsync.map_inbound('ProductionResponse', 'resp', '{\"id\": \"ID\", \"order_code\": \"ProductionRequestID\", \"state\": \"ResponseState\"}');",
	"CREATE TABLE seg (id text PRIMARY KEY, response_id text, produced numeric);",
	"SELECT mfgsync.map_inbound('SegmentResponse', 'seg', '{\"id\": \"ID\", \"response_id\": \"../ID\", \"produced\": \"MaterialActual[MaterialUse=Produced]/Quantity/QuantityString\"}');",
	"SELECT mfgsync.receive_b2mml(" . literal('SyncProductionPerformance.xml') . ") LIKE '%Accepted%' AS xml_accepted;",
	"SELECT mfgsync.receive_b2mml(" . literal('json/SyncProductionPerformance.json') . ") LIKE '%Accepted%' AS json_answered;",
	"SELECT mfgsync.receive_b2mml(" . literal('invalid/' . (sort grep { /\.xml$/ } map { basename($_) } glob("$examples/invalid/*"))[0]) . ") LIKE '%Rejected%' AS invalid_rejected;",
	"SELECT mfgsync.receive_b2mml('<not xml') LIKE '%Rejected%' AS garbage_rejected;",
	"SELECT count(*) AS responses FROM resp;",
	"CREATE TABLE po (order_code text PRIMARY KEY, product_code text, machine_code text, quantity numeric, unit text, start timestamptz, \"end\" timestamptz);",
	"SELECT mfgsync.track('po', 'ProductionOrder');",
	"SELECT mfgsync.create_endpoint('mes', 'http://127.0.0.1:9/', 'b2mml', '{\"dialect\": \"json-edinn\"}') > 0 AS created;",
	"SELECT mfgsync.pause_endpoint('mes');",
	"SELECT mfgsync.subscribe('mes', ARRAY['ProductionOrder']);",
	"INSERT INTO po VALUES ('PO-1 <&>', 'P-1', 'M-1', 2.5, 'pcs', now(), now() + interval '1 hour');",
	"SELECT length(mfgsync.b2mml_render(max(id), 'mes')) > 0 AS rendered FROM mfgsync.events;",
	"SELECT length(mfgsync.b2mml_convert(mfgsync.b2mml_render(max(id), 'mes'), 'xml')) > 0 AS converted FROM mfgsync.events;",
	"SELECT length(mfgsync.b2mml_convert(" . literal('SyncProductionSchedule.xml') . ", 'json-mesa')) > 0 AS to_mesa;",
	"");

my $log = $node->basedir . '/memcheck.log';
my ($out, $err);
my $ok = IPC::Run::run(
	[ 'valgrind', '--tool=memcheck', '--num-callers=30', '--error-limit=no',
	  "--log-file=$log", 'postgres', '--single', '-D', $node->data_dir, 'postgres' ],
	'<', \$sql, '>', \$out, '2>', \$err);
ok($ok, 'the single-user backend ran the workload under memcheck and exited cleanly');

# the workload really ran
like($out, qr/scanned = "2000"/, 'the foreign table was scanned: 2000 rows');
like($out, qr/machines = "7"/, 'a deeper path was read in every row');
like($out . $err, qr/malformed JSON/, 'the malformed row failed as malformed JSON');
like($out, qr/xml_accepted = "t"/, 'an XML message was accepted');
like($out, qr/json_answered = "t"/, 'a JSON message was accepted');
like($out, qr/invalid_rejected = "t"/, 'an invalid example was rejected');
like($out, qr/garbage_rejected = "t"/, 'garbage was rejected');
like($out, qr/rendered = "t"/, 'a document was rendered');
like($out, qr/converted = "t"/, 'and converted to XML');
like($out, qr/to_mesa = "t"/, 'an example was converted to MESA JSON');

# PostgreSQL's own: WAL padding, and its regex cache shifting its array
# with memmove, which Debian's fortified build turns into __memmove_chk and
# memcheck reports as an overlapping memcpy_chk (core code, called here by
# the endpoint validation)
my ($ours, $other) = memcheck_judge([$log],
	qr/Syscall param pwrite64\(buf\) points to uninitialised byte\(s\).*XLog/s,
	qr/Source and destination overlap in memcpy_chk.*\n[^\n]*\n[^\n]*RE_compile_and_cache/s);
is(scalar(@$ours), 0, 'no memcheck error in mfgsync\'s code')
  or diag(join("\n----\n", @$ours));
is(scalar(@$other), 0, 'no memcheck error other than PostgreSQL\'s known ones')
  or diag(join("\n----\n", @$other));

done_testing();
