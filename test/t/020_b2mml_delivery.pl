# test/t/020_b2mml_delivery.pl - B2MML endpoints end to end: a B2MML
# receiver (test/receiver.py --b2mml) on 127.0.0.1 answering a ConfirmBOD
# Accepted, Rejected, garbage and nothing; statuses end up as specified;
# a late ConfirmBOD settles its message (mfgsync.b2mml_confirm).
use strict;
use warnings;
use File::Basename;
use File::Temp qw(tempfile);
use FindBin;
use lib $FindBin::RealBin;
use MfgTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = mfg_cluster('b2mml', "mfgsync.poll_interval = 500\n");
my $r = start_receiver('b2', '--b2mml', 'path',
	'--b2mml-description', 'unknown material P-1 <x>',
	'--b2mml-note', 'create it in the MES first');

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{
CREATE TABLE production_order (order_code text PRIMARY KEY, product_code text NOT NULL,
    machine_code text, quantity numeric(12,3), unit text, "start" timestamptz, "end" timestamptz);
SELECT mfgsync.track('production_order', 'ProductionOrder');
});
my $fast = '"retry_initial_ms": 100, "retry_max_ms": 200';
my %ep = (
	acc => ['accept', qq({"dialect": "xml"})],
	rej => ['reject', qq({"dialect": "json-mesa"})],
	garb => ['garbage', qq({$fast, "max_attempts": 3})],
	none => ['empty', qq({$fast, "max_attempts": 3})],
	noneok => ['empty', qq({"confirmation_code": "OnError"})],
	late => ['empty', qq({$fast, "max_attempts": 1000})],
	edinn => ['reject', qq({"dialect": "json-edinn", "retry_rejected": true, $fast, "client_error_attempts": 2})],
);
for my $name (sort keys %ep)
{
	my ($mode, $opts) = @{ $ep{$name} };
	sql(qq{SELECT mfgsync.create_endpoint('$name', '} . receiver_url($r, "/b2mml/$mode")
		  . qq{', 'b2mml', '$opts');
	       SELECT mfgsync.subscribe('$name', ARRAY['ProductionOrder']);});
}

sql(q{INSERT INTO production_order VALUES
      ('PO-1', 'P-1', 'M-1', 500, 'pcs', '2026-11-23 06:00+01', '2026-11-23 14:00+01')});
my $id = sql(q{SELECT max(id) FROM mfgsync.events});

sub status
{
	my ($name) = @_;
	return sql(qq{SELECT delivered || ' ' || failed || ' ' || dead || ' ' || pending
	                FROM mfgsync.endpoint_status WHERE name = '$name'});
}

sub dead
{
	my ($name) = @_;
	return sql(qq{SELECT reason || '|' || attempts || '|' || coalesce(last_error, '') || '|'
	                     || coalesce(rejection_description, '') || '|' || coalesce(rejection_note, '')
	                FROM mfgsync.dead_letters WHERE endpoint = '$name' AND event_id = $id});
}

# Accepted -> delivered, and the receiver got exactly b2mml_render's document
ok(wait_until(sub { status('acc') eq '1 0 0 0' }, 60, 'acc delivered'),
	'Accepted: delivered') or diag status('acc');
my ($acc) = grep { $_->{path} eq '/b2mml/accept' } receiver_log($r);
is($acc->{body}, sql(qq{SELECT mfgsync.b2mml_render($id, 'acc')}),
	'the receiver got the document b2mml_render shows');
like($acc->{headers}{'content-type'}, qr{^application/xml}, 'sent as application/xml');
{
	my ($fh, $file) = tempfile(UNLINK => 1);
	binmode $fh, ':utf8';
	print $fh $acc->{body};
	close $fh;
	my $xsd = "$FindBin::RealBin/../b2mml/xsd/mfgsync-b2mml-V0600.xsd";
	my ($stdout, $stderr);
	my $valid = IPC::Run::run([ 'xmllint', '--noout', '--schema', $xsd, $file ],
		'>', \$stdout, '2>', \$stderr);
	ok($valid, 'the delivered document validates against the B2MML schema')
	  or diag $stderr;
}

# Rejected -> a rejected dead letter with Description and Note, not retried
ok(wait_until(sub { dead('rej') ne '' }, 60, 'rej dead-lettered'), 'Rejected: dead letter');
is(dead('rej'),
	'rejected|1|rejected by the receiver: unknown material P-1 <x>|unknown material P-1 <x>|create it in the MES first',
	'rejected, once, with the ConfirmBOD Description and Note kept');
is(status('rej'), '0 0 1 0', 'rejected is not retried');

# retry_rejected: a rejection is a failure, retried up to client_error_attempts
ok(wait_until(sub { dead('edinn') ne '' }, 60, 'edinn dead-lettered'),
	'retry_rejected: dead letter after its attempts');
like(dead('edinn'), qr/^exhausted\|2\|HTTP 200: rejected by the receiver/,
	'retried rejections end as exhausted after client_error_attempts');
is(scalar(grep { $_->{path} eq '/b2mml/reject' && $_->{headers}{'content-type'} =~ /json/ }
	  receiver_log($r)), 3, 'JSON requests: one to rej, two to edinn');

# garbage and nothing with ConfirmationCode Always -> failures, retried
ok(wait_until(sub { dead('garb') ne '' && dead('none') ne '' }, 60, 'garbage and empty dead'),
	'no ConfirmBOD: retried, then dead letter');
like(dead('garb'), qr/^exhausted\|3\|HTTP 200: the reply has no ConfirmBOD \(not well-formed XML/,
	'garbage: 3 attempts, the parse error recorded');
like(dead('none'), qr/^exhausted\|3\|HTTP 200: the reply has no ConfirmBOD \(empty body\)/,
	'nothing: 3 attempts recorded');
is(sql(q{SELECT count(*) FROM mfgsync.failures WHERE endpoint = 'garb'}), '3',
	'every attempt recorded as a failure');
# ... and with OnError, nothing is fine
ok(wait_until(sub { status('noneok') eq '1 0 0 0' }, 60, 'noneok delivered'),
	'no ConfirmBOD with ConfirmationCode OnError: delivered');

# a late ConfirmBOD (Accepted, by BODID) settles the event waiting for one
ok(wait_until(sub { sql(q{SELECT count(*) FROM mfgsync.failures WHERE endpoint = 'late'}) >= 1 },
		60, 'late failed once'), 'late: waits for a ConfirmBOD');
my $bodid = sql(qq{SELECT substring(mfgsync.b2mml_render($id, 'late') from '<BODID>([^<]*)')});
is(sql(qq{SELECT mfgsync.b2mml_confirm('<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML-V0600">
  <ApplicationArea><CreationDateTime>2026-11-23T07:00:01Z</CreationDateTime></ApplicationArea>
  <DataArea><Confirm><OriginalApplicationArea><CreationDateTime>2026-11-23T07:00:00Z</CreationDateTime>
  <BODID>$bodid</BODID></OriginalApplicationArea></Confirm><BOD/></DataArea></ConfirmBOD>')}),
	't', 'the late ConfirmBOD names the message');
ok(wait_until(sub { status('late') =~ /^1 \d+ 0 0$/ }, 60, 'late settled'),
	'Accepted late: delivered, nothing pending') or diag status('late');
is(sql(q{SELECT count(*) FROM mfgsync.retry r JOIN mfgsync.endpoint e ON e.id = r.endpoint_id
          WHERE e.name = 'late'}), '0', 'and it waits for no further attempt');

# a late Rejected (JSON, by LogicalID) makes the next event a rejected dead letter
sql(q{UPDATE production_order SET machine_code = 'M-2'});
my $id2 = sql(q{SELECT max(id) FROM mfgsync.events});
my $ep_late = sql(q{SELECT id FROM mfgsync.endpoint WHERE name = 'late'});
ok(wait_until(sub { sql(qq{SELECT count(*) FROM mfgsync.failures WHERE endpoint = 'late' AND event_id = $id2}) >= 1 },
		60, 'late failed once more'), 'late: the change waits for a ConfirmBOD');
is(sql(qq{SELECT mfgsync.b2mml_confirm('{"ConfirmBOD": {"ApplicationArea": {"CreationDateTime": "2026-11-23T07:00:01Z"},
  "DataArea": {"Confirm": {"OriginalApplicationArea": {"Sender": {"LogicalID": "mfgsync-$ep_late-$id2"}},
     "ResponseCriteria": [{"ResponseExpression": {"\@actionCode": "Rejected"}}]},
  "BOD": [{"Description": ["machine M-2 is down"], "Note": ["plan it on M-1"]}]}}}')}),
	't', 'the late JSON ConfirmBOD names the message');
is(sql(qq{SELECT reason || '|' || rejection_description || '|' || rejection_note
            FROM mfgsync.dead_letters WHERE endpoint = 'late' AND event_id = $id2}),
	'rejected|machine M-2 is down|plan it on M-1', 'Rejected late: a rejected dead letter');
ok(wait_until(sub { sql(q{SELECT pending FROM mfgsync.endpoint_status WHERE name = 'late'}) eq '0' }, 60,
	'late: nothing pending'), 'and nothing is pending any more');

# a ConfirmBOD for no message of ours settles nothing
is(sql(q{SELECT mfgsync.b2mml_confirm('<ConfirmBOD xmlns="http://www.mesa.org/xml/B2MML-V0600"><ApplicationArea/><DataArea><Confirm><OriginalApplicationArea><BODID>5f0c2a52-8d1e-4c4b-9a77-3b1f6e0d2a11</BODID></OriginalApplicationArea></Confirm><BOD/></DataArea></ConfirmBOD>')}),
	'f', 'an unknown BODID matches nothing');

$node->stop;
done_testing();
