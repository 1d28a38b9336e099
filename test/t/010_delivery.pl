# Delivery end to end, against real receivers (test/receiver.py) on
# 127.0.0.1: exact webhook bodies and headers, Standard Webhooks signatures
# (checked by the receiver and again here in Perl) and secret rotation,
# CloudEvents structured and batched, a receiver that is down then up,
# random 500s, a hanging receiver next to a healthy one, 410, 429 with
# Retry-After, dead letters and replay, 3xx not taken for success,
# subscription filters, waking on commit without the polling timer, and
# events committed right after subscribe().
use strict;
use warnings;
use Digest::SHA qw(hmac_sha256_base64);
use Encode qw(encode_utf8);
use FindBin;
use IPC::Run;
use lib $FindBin::RealBin;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);
use MfgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = mfg_cluster('delivery');
my $json = JSON::PP->new->canonical;
my @receivers;    # stopped at the end, or by END if the script dies

END
{
	local $?;
	eval { $_->{handle}->kill_kill } for @receivers;
}

sub sql
{
	my ($query) = @_;
	return $node->safe_psql('postgres', $query);
}

# a string as an SQL literal
sub lit
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

sub receiver
{
	my $r = start_receiver(@_);
	push @receivers, $r;
	return $r;
}

# a production order table tracked under message type $type
sub order_table
{
	my ($table, $type) = @_;
	sql(qq{
		CREATE TABLE $table (order_code text PRIMARY KEY, product_code text,
		                     machine_code text, start timestamptz,
		                     "end" timestamptz, quantity numeric);
		SELECT mfgsync.track('$table', '$type');
	});
	return;
}

sub endpoint
{
	my ($name, $url, $options, $types, $filter) = @_;
	# one transaction: see section 12 for the two apart
	sql(sprintf(q{BEGIN;
		SELECT mfgsync.create_endpoint(%s, %s, 'webhook', %s);
		SELECT mfgsync.subscribe(%s, %s, %s);
		COMMIT;},
		lit($name), lit($url), lit($json->encode($options // {})),
		lit($name), lit('{' . join(',', @$types) . '}'),
		defined $filter ? lit($filter) : 'NULL'));
	return;
}

# ids of the outbox events of a message type, in id order
sub event_ids
{
	my ($type) = @_;
	return split /\n/,
	  sql("SELECT id FROM mfgsync.events WHERE message_type = "
		  . lit($type) . " ORDER BY id");
}

sub answered_ok
{
	my ($req) = @_;
	return defined $req->{status} && $req->{status} >= 200
	  && $req->{status} < 300;
}

# the events a receiver accepted (2xx), in arrival order, as plain-envelope
# hashes; CloudEvents (single or batched) are mapped to id/message_type/key
sub accepted_events
{
	my ($r) = @_;
	my @events;
	for my $req (grep { answered_ok($_) } receiver_log($r))
	{
		my $body = decode_json(encode_utf8($req->{body}));
		for my $e (ref $body eq 'ARRAY' ? @$body : ($body))
		{
			if (exists $e->{specversion})
			{
				my ($mt) = $e->{type} =~ /^(.*)\.[^.]+$/;
				$e = { id => $e->{id}, message_type => $mt,
					key => $e->{data}{key}, ce => $e };
			}
			push @events, $e;
		}
	}
	return @events;
}

# wait until the receiver has accepted every one of @$ids
sub wait_accepted
{
	my ($r, $ids, $seconds, $what) = @_;
	my $missing;
	my $ok = wait_until(
		sub {
			my %got = map { $_->{id} => 1 } accepted_events($r);
			$missing = grep { !$got{$_} } @$ids;
			return $missing == 0;
		},
		$seconds, $what);
	ok($ok, $what) or diag("$missing of " . scalar(@$ids) . " missing");
	return $ok;
}

# a fresh Standard Webhooks secret: whsec_ + base64 of 32 random bytes
sub new_secret
{
	return 'whsec_' . encode_base64(join('', map { chr(int(rand(256))) } 1 .. 32), '');
}

# base64(HMAC-SHA256(key, id.timestamp.body)), with the padding
# Digest::SHA leaves off
sub perl_signature
{
	my ($secret, $id, $ts, $body) = @_;
	my $key = decode_base64(substr($secret, length('whsec_')));
	my $sig = hmac_sha256_base64("$id.$ts." . encode_utf8($body), $key);
	$sig .= '=' while length($sig) % 4;
	return $sig;
}

sub sql_bool
{
	return sql(shift) eq 't';
}

# ---------------------------------------------------------------------
# 1. Plain webhooks end to end: bodies, headers, signatures, rotation
# ---------------------------------------------------------------------
my $secret = new_secret();
my $r1 = receiver('plain', '--secret', $secret);
order_table('production_order', 'ProductionOrder');
endpoint('plain', receiver_url($r1),
	{ secret => $secret, headers => { 'X-Plant' => 'Lyon' } },
	['ProductionOrder']);

sql(q{
	SET timezone = 'UTC';
	INSERT INTO production_order VALUES ('PO-1', 'Valve "A" Ø12', 'M1',
		'2026-03-02 08:00+00', '2026-03-02 16:00+00', 12.5);
	UPDATE production_order SET quantity = 15.000 WHERE order_code = 'PO-1';
	UPDATE production_order SET machine_code = machine_code;   -- no event
	UPDATE production_order SET order_code = 'PO-2' WHERE order_code = 'PO-1';
	DELETE FROM production_order WHERE order_code = 'PO-2';
});

my @ids = event_ids('ProductionOrder');
is(scalar(@ids), 5, 'five events captured (the no-op update emits none)');
wait_accepted($r1, \@ids, 30, 'the receiver got all five events');

my @reqs = receiver_log($r1);
is(scalar(@reqs), 5, 'one request per event, none repeated');
is(per_key_order_ok([ accepted_events($r1) ]), '', 'per-key order');
# different keys may arrive in any order: match requests to events by id
my %req_of = map { ($_->{headers}{'webhook-id'} // '') => $_ } @reqs;

my $row1 = '"order_code":"PO-1","product_code":"Valve \"A\" Ø12",'
  . '"machine_code":"M1","start":"2026-03-02T08:00:00+00:00",'
  . '"end":"2026-03-02T16:00:00+00:00"';
my $row2 = $row1 =~ s/PO-1/PO-2/r;
my @expected = (
	[ 'Add', 'Created', 'PO-1', qq({$row1,"quantity":12.5}), 'null' ],
	[ 'Change', 'Updated', 'PO-1', qq({$row1,"quantity":15.000}),
		qq({$row1,"quantity":12.5}) ],
	[ 'Delete', 'Deleted', 'PO-1', 'null', qq({$row1,"quantity":15.000}) ],
	[ 'Add', 'Created', 'PO-2', qq({$row2,"quantity":15.000}), 'null' ],
	[ 'Delete', 'Deleted', 'PO-2', 'null', qq({$row2,"quantity":15.000}) ]);
for my $i (0 .. $#expected)
{
	my ($action, $verb, $code, $data, $old) = @{ $expected[$i] };
	my $req = $req_of{ $ids[$i] } // { headers => {}, body => '{}' };
	my $body = decode_json(encode_utf8($req->{body}));
	my $time = delete $body->{time};
	# (this file is UTF-8 bytes, no "use utf8": decode_json takes them)
	my $want = decode_json(qq({"id":"$ids[$i]",
		"type":"ProductionOrder.$verb","message_type":"ProductionOrder",
		"action":"$action","key":{"order_code":"$code"},
		"data":$data,"old_data":$old}));
	is_deeply($body, $want, "event $i ($action $code): exact body")
	  or diag($req->{body});
	ok( defined $time && sql_bool(
			"SELECT created_at = "
			  . lit($time)
			  . "::timestamptz FROM mfgsync.events WHERE id = $ids[$i]"),
		"event $i: time is the event's created_at");
	my $h = $req->{headers};
	is($h->{'content-type'}, 'application/json', "event $i: content-type");
	is($h->{'webhook-id'}, $ids[$i], "event $i: webhook-id is the event id");
	ok(defined $h->{'webhook-timestamp'}
		  && $h->{'webhook-timestamp'} =~ /^\d+$/
		  && abs($h->{'webhook-timestamp'} - $req->{t}) < 60,
		"event $i: webhook-timestamp is the sending time in seconds");
	is($h->{'x-plant'}, 'Lyon', "event $i: the endpoint's custom header");
	like($h->{'webhook-signature'} // '', qr/^v1,[A-Za-z0-9+\/]+=*$/,
		"event $i: one v1 signature");
	is($req->{sig_ok}, JSON::PP::true, "event $i: the receiver verified the signature");
}
# numbers keep their digits: 15.000 is not 15
like($req_of{ $ids[1] }{body} // '', qr/"quantity":15\.000\b/, 'numeric rendered with every digit');

# one signature, checked independently of receiver.py
{
	my $req = $reqs[0];
	my $h = $req->{headers};
	my $want = perl_signature($secret, $h->{'webhook-id'},
		$h->{'webhook-timestamp'}, $req->{body});
	is($h->{'webhook-signature'}, "v1,$want",
		'the signature matches an HMAC-SHA256 computed in Perl');
	isnt(perl_signature(new_secret(), $h->{'webhook-id'},
			$h->{'webhook-timestamp'}, $req->{body}),
		$want, '(and another secret would not match)');
}

# rotation: both the new and the previous secret sign
my $secret2 = new_secret();
my $r1b = receiver('rotated', '--secret', $secret2, '--secret', $secret);
sql(sprintf(q{SELECT mfgsync.alter_endpoint('plain', %s)},
	lit($json->encode({ url => receiver_url($r1b), secret => $secret2,
		previous_secret => $secret }))));
sql(q{INSERT INTO production_order (order_code, machine_code) VALUES ('PO-3', 'M2')});
my ($rot_id) = (event_ids('ProductionOrder'))[-1];
wait_accepted($r1b, [$rot_id], 30, 'after rotation the event arrives');
{
	my ($req) = grep { ($_->{headers}{'webhook-id'} // '') eq $rot_id }
	  receiver_log($r1b);
	my $h = $req->{headers};
	my @sigs = split / /, $h->{'webhook-signature'} // '';
	my @want = map {
		'v1,' . perl_signature($_, $rot_id, $h->{'webhook-timestamp'}, $req->{body})
	} ($secret2, $secret);
	is_deeply([ sort @sigs ], [ sort @want ],
		'webhook-signature carries two v1 signatures: new and previous secret');
	is($req->{sig_ok}, JSON::PP::true, 'the receiver with both secrets verifies');
	is(scalar(grep { $_->{body} =~ /PO-1/ } receiver_log($r1b)), 0,
		'nothing old is sent again to the new URL');
}

# ---------------------------------------------------------------------
# 2. CloudEvents: structured and batched
# ---------------------------------------------------------------------
my $r2 = receiver('ce');
my $r2b = receiver('ce_batch');
order_table('ce_order', 'CeOrder');
order_table('ce_batch_order', 'CeBatchOrder');
endpoint('ce', receiver_url($r2),
	{ envelope => 'cloudevents', source => 'urn:plant:lyon' }, ['CeOrder']);
endpoint('ce-batch', receiver_url($r2b),
	{ envelope => 'cloudevents-batch', batch_size => 100 }, ['CeBatchOrder']);

sql(q{INSERT INTO ce_order VALUES ('CE-1', 'P1', 'M1', NULL, NULL, 3);
	UPDATE ce_order SET quantity = 4});
my @ce_ids = event_ids('CeOrder');
wait_accepted($r2, \@ce_ids, 30, 'CloudEvents (structured): both events arrive');
{
	my @req = receiver_log($r2);
	is(scalar(@req), 2, 'structured: one request per event');
	my $b = decode_json(encode_utf8($req[1]{body}));
	is($req[1]{headers}{'content-type'}, 'application/cloudevents+json',
		'structured: content type application/cloudevents+json');
	my $time = delete $b->{time};
	is_deeply($b, {
			specversion => '1.0', id => $ce_ids[1], source => 'urn:plant:lyon',
			type => 'CeOrder.Updated', datacontenttype => 'application/json',
			data => { action => 'Change', key => { order_code => 'CE-1' },
				data => { order_code => 'CE-1', product_code => 'P1',
					machine_code => 'M1', start => undef, end => undef,
					quantity => 4 },
				old_data => { order_code => 'CE-1', product_code => 'P1',
					machine_code => 'M1', start => undef, end => undef,
					quantity => 3 } } },
		'structured: specversion, id, source, type and the event as data')
	  or diag($req[1]{body});
	ok(sql_bool("SELECT created_at = " . lit($time // 'epoch')
			  . "::timestamptz FROM mfgsync.events WHERE id = $ce_ids[1]"),
		'structured: time is the event time');
}

# 250 events over 25 keys, 10 per key
sql(q{INSERT INTO ce_batch_order (order_code, quantity)
	  SELECT 'B-' || g, 0 FROM generate_series(1, 25) g});
sql(join ";\n",
	map { "UPDATE ce_batch_order SET quantity = $_" } 1 .. 9);
my @batch_ids = event_ids('CeBatchOrder');
is(scalar(@batch_ids), 250, '250 batched events captured');
wait_accepted($r2b, \@batch_ids, 30, 'CloudEvents (batched): all 250 events arrive');
{
	my @req = receiver_log($r2b);
	my @sizes = map { scalar @{ decode_json(encode_utf8($_->{body})) } } @req;
	ok(@req >= 3 && !grep({ $_ > 100 || $_ < 1 } @sizes),
		'batched: requests of at most 100 events') or diag("sizes @sizes");
	ok(@req <= 25, 'batched: events do share requests')
	  or diag("sizes @sizes");
	is(scalar(grep { ($_->{headers}{'content-type'} // '') ne
				'application/cloudevents-batch+json' } @req), 0,
		'batched: content type application/cloudevents-batch+json');
	my @events = accepted_events($r2b);
	my %seen;
	$seen{ $_->{id} }++ for @events;
	is_deeply([ sort { $a <=> $b } keys %seen ], \@batch_ids,
		'batched: exactly the 250 event ids');
	is(per_key_order_ok(\@events), '', 'batched: per-key order');
	ok(!grep({ $_->{ce}{specversion} ne '1.0' || !defined $_->{ce}{source} }
			@events), 'batched: every element is a CloudEvent');
}

# ---------------------------------------------------------------------
# 3. Receiver down, then up on the same port
# ---------------------------------------------------------------------
my $probe = start_receiver('probe');
my $down_port = $probe->{port};
stop_receiver($probe);
order_table('down_order', 'DownOrder');
endpoint('down', "http://127.0.0.1:$down_port/hook",
	{ retry_initial_ms => 100, retry_max_ms => 1000 }, ['DownOrder']);
sql(q{INSERT INTO down_order (order_code, quantity)
	  SELECT 'D-' || g, 0 FROM generate_series(1, 20) g});
sql(join ";\n", map { "UPDATE down_order SET quantity = $_" } 1 .. 9);
my @down_ids = event_ids('DownOrder');
is(scalar(@down_ids), 200, '200 events over 20 keys for the dead receiver');
# the sender holds the batch in memory while the endpoint is down (nothing
# is written until it settles), so its attempt shows in the server log
ok(wait_until(
		sub {
			slurp_file($node->logfile) =~
			  /endpoint "down" unavailable, retrying in \d+ ms/;
		},
		30),
	'the sender tried the dead receiver and backs off');
my $r3 = start_receiver_on_port('down_up', $down_port);
push @receivers, $r3;
wait_accepted($r3, \@down_ids, 30, 'receiver back up: every event arrives');
is(per_key_order_ok([ accepted_events($r3) ]), '', 'down/up: per-key order');
ok(wait_until(
		sub {
			sql_bool(q{SELECT count(*) > 0 FROM mfgsync.failures
				WHERE endpoint = 'down' AND status IS NULL});
		},
		30),
	'down/up: transport errors recorded with status NULL');

# while the receiver is down, the endpoint is moved to a live one: the
# events waiting for the dead URL go to the new one
my $probe2 = start_receiver('probe2');
my $dead_port2 = $probe2->{port};
stop_receiver($probe2);
order_table('moved_order', 'MovedOrder');
endpoint('moved', "http://127.0.0.1:$dead_port2/hook",
	{ retry_initial_ms => 100, retry_max_ms => 1000 }, ['MovedOrder']);
sql(q{INSERT INTO moved_order (order_code, quantity)
	  SELECT 'MV-' || g, 0 FROM generate_series(1, 5) g});
ok(wait_until(
		sub {
			slurp_file($node->logfile) =~
			  /endpoint "moved" unavailable, retrying in \d+ ms/;
		},
		30),
	'moved: the sender tried the dead receiver');
my $r3b = receiver('moved_to');
sql(sprintf(q{SELECT mfgsync.alter_endpoint('moved', %s)},
	lit($json->encode({ url => receiver_url($r3b) }))));
wait_accepted($r3b, [ event_ids('MovedOrder') ], 10,
	'moved: alter_endpoint(url) while down sends the waiting events there');
sql(q{SELECT mfgsync.drop_endpoint('moved')});    # stop its retries

# ---------------------------------------------------------------------
# 4. 30% of answers are 500
# ---------------------------------------------------------------------
my $r4 = receiver('flaky', '--fail-rate', '0.3', '--fail-status', '500',
	'--seed', '42');
order_table('flaky_order', 'FlakyOrder');
endpoint('flaky', receiver_url($r4),
	{ retry_initial_ms => 50, retry_max_ms => 500, max_attempts => 50 },
	['FlakyOrder']);
sql(q{INSERT INTO flaky_order (order_code, quantity)
	  SELECT 'F-' || g, 0 FROM generate_series(1, 50) g});
sql(join ";\n", map { "UPDATE flaky_order SET quantity = $_" } 1 .. 9);
my @flaky_ids = event_ids('FlakyOrder');
is(scalar(@flaky_ids), 500, '500 events over 50 keys for the flaky receiver');
wait_accepted($r4, \@flaky_ids, 25, 'flaky receiver: every event arrives');
is(per_key_order_ok([ accepted_events($r4) ]), '', 'flaky: per-key order');
ok(grep({ ($_->{status} // 0) == 500 } receiver_log($r4)) > 0,
	'flaky: the receiver did answer 500s');
ok(wait_until(
		sub {
			sql_bool(q{SELECT pending = 0 FROM mfgsync.endpoint_status
				WHERE name = 'flaky'});
		},
		10),
	'flaky: endpoint_status reaches pending 0');
ok(sql_bool(q{SELECT count(*) > 0 AND bool_and(status = 500)
	FROM mfgsync.failures WHERE endpoint = 'flaky'}),
	'flaky: failures recorded with status 500');
is(sql(q{SELECT dead FROM mfgsync.endpoint_status WHERE name = 'flaky'}),
	'0', 'flaky: nothing dead-lettered');

# ---------------------------------------------------------------------
# 5. A hanging receiver does not hold back another endpoint
# ---------------------------------------------------------------------
my $r5a = receiver('hang', '--hang');
my $r5b = receiver('healthy');
order_table('hang_order', 'HangOrder');
endpoint('hang', receiver_url($r5a),
	{ timeout_ms => 1000, max_attempts => 2, retry_initial_ms => 100,
		retry_max_ms => 200 }, ['HangOrder']);
endpoint('healthy', receiver_url($r5b), {}, ['HangOrder']);
sql(q{INSERT INTO hang_order (order_code, quantity)
	  SELECT 'H-' || g, 1 FROM generate_series(1, 3) g});
my @hang_ids = event_ids('HangOrder');
wait_accepted($r5b, \@hang_ids, 30, 'hang: the healthy endpoint gets every event');
ok(wait_until(sub { scalar(receiver_log($r5a)) > 0 }, 30),
	'hang: the hanging receiver was sent requests');
{
	my @a = receiver_log($r5a);
	my @b = receiver_log($r5b);
	my ($a_first) = sort { $a <=> $b } map { $_->{t} } @a;
	my ($b_last) = sort { $b <=> $a } map { $_->{t} } @b;
	ok(defined $a_first && $b_last < $a_first + 1.0,
		'hang: the healthy endpoint got everything before the first timeout')
	  or diag(sprintf("last healthy request %.3f s after the first hung one",
			$b_last - ($a_first // 0)));
}
ok(wait_until(
		sub {
			sql_bool(q{SELECT count(*) > 0 FROM mfgsync.failures
				WHERE endpoint = 'hang' AND status IS NULL
				  AND error ~* 'time(d)? ?out'});
		},
		30),
	'hang: failures record the timeout');
stop_receiver($r5a);    # no hung requests left behind
@receivers = grep { $_ != $r5a } @receivers;

# ---------------------------------------------------------------------
# 6. 410 Gone pauses the endpoint; resumed, the parked events go out
# ---------------------------------------------------------------------
my $r6 = receiver('gone', '--status', '410');
order_table('gone_order', 'GoneOrder');
endpoint('gone', receiver_url($r6), { retry_initial_ms => 100 }, ['GoneOrder']);
sql(q{INSERT INTO gone_order (order_code, quantity) VALUES ('G-1', 1), ('G-2', 1)});
sql(q{UPDATE gone_order SET quantity = 2 WHERE order_code = 'G-1'});
my @gone_ids = event_ids('GoneOrder');
ok(wait_until(
		sub {
			sql_bool(q{SELECT paused AND paused_reason ~ '410'
				FROM mfgsync.endpoint_status WHERE name = 'gone'});
		},
		30),
	'410: the endpoint is paused, the reason names 410')
  or diag(sql(q{SELECT paused, paused_reason, last_error
	FROM mfgsync.endpoint_status WHERE name = 'gone'}));
my $r6b = receiver('gone_back');
sql(sprintf(q{SELECT mfgsync.alter_endpoint('gone', %s);
	SELECT mfgsync.resume_endpoint('gone');},
	lit($json->encode({ url => receiver_url($r6b) }))));
wait_accepted($r6b, \@gone_ids, 20, '410: after resume every parked event is delivered');
is(per_key_order_ok([ accepted_events($r6b) ]), '', '410: per-key order');
is(sql(q{SELECT paused FROM mfgsync.endpoint_status WHERE name = 'gone'}),
	'f', '410: no longer paused');

# ---------------------------------------------------------------------
# 7. 429 with Retry-After
# ---------------------------------------------------------------------
my $r7 = receiver('throttle', '--first-n-status', '429', '--first-n', '1',
	'--retry-after', '2');
order_table('throttle_order', 'ThrottleOrder');
endpoint('throttle', receiver_url($r7),
	{ retry_initial_ms => 100, retry_max_ms => 200 }, ['ThrottleOrder']);
sql(q{INSERT INTO throttle_order (order_code, quantity) VALUES ('T-1', 1)});
my @t_ids = event_ids('ThrottleOrder');
wait_accepted($r7, \@t_ids, 30, '429: the event arrives after the throttle');
{
	my @req = receiver_log($r7);
	is_deeply([ map { $_->{status} } @req ], [ 429, 204 ],
		'429: one throttled attempt, then one delivered');
	my $gap = @req >= 2 ? $req[1]{t} - $req[0]{t} : 0;
	ok($gap >= 1.9, 'the second attempt honours Retry-After: 2')
	  or diag(sprintf('gap %.3f s', $gap));
	ok(wait_until(sub {
		sql_bool(q{SELECT count(*) = 1 FROM mfgsync.failures
			WHERE endpoint = 'throttle' AND status = 429})}, 30),
		'429: the throttled attempt is recorded');
}

# ---------------------------------------------------------------------
# 8. Dead letter after client errors, then replay
# ---------------------------------------------------------------------
my $r8 = receiver('reject', '--status', '400');
order_table('reject_order', 'RejectOrder');
endpoint('reject', receiver_url($r8),
	{ client_error_attempts => 2, retry_initial_ms => 100, retry_max_ms => 200 },
	['RejectOrder']);
sql(q{INSERT INTO reject_order (order_code, quantity) VALUES ('R-1', 1)});
my ($dead_id) = event_ids('RejectOrder');
ok(wait_until(
		sub {
			sql_bool(qq{SELECT count(*) = 1 FROM mfgsync.dead_letters
				WHERE endpoint = 'reject' AND event_id = $dead_id});
		},
		20),
	'400: the event is dead-lettered');
is(sql(qq{SELECT last_status, reason, attempts FROM mfgsync.dead_letters
	WHERE endpoint = 'reject' AND event_id = $dead_id}),
	'400|exhausted|2', 'dead letter: status 400, exhausted after 2 attempts');
is(scalar(receiver_log($r8)), 2, 'dead letter: the receiver saw exactly 2 attempts');
my $r8b = receiver('reject_fixed');
sql(sprintf(q{SELECT mfgsync.alter_endpoint('reject', %s)},
	lit($json->encode({ url => receiver_url($r8b) }))));
is(sql(qq{SELECT mfgsync.replay('reject', ARRAY[$dead_id]::bigint[])}),
	'1', 'replay finds the event');
wait_accepted($r8b, [$dead_id], 20, 'replay: the dead letter is delivered');
is(sql(q{SELECT count(*) FROM mfgsync.dead_letters WHERE endpoint = 'reject'}),
	'0', 'replay: no longer a dead letter');

# ---------------------------------------------------------------------
# 9. Redirects: followed only when the endpoint allows it, and only to
# the same host; a 3xx that is not followed is a failure, never delivered
# ---------------------------------------------------------------------
my $r9t = receiver('redirect_target');
my $moved = receiver_url($r9t, '/moved');
(my $other_host = $moved) =~ s/127\.0\.0\.1/localhost/;
my $r9f = receiver('redirect_same', '--status', '307', '--location', $moved);
my $r9x = receiver('redirect_other', '--status', '307', '--location', $other_host);
order_table('redirect_order', 'RedirectOrder');
endpoint('follow', receiver_url($r9f), { follow_redirects => JSON::PP::true },
	['RedirectOrder']);
endpoint('nofollow', receiver_url($r9f), { client_error_attempts => 1 },
	['RedirectOrder']);
endpoint('otherhost', receiver_url($r9x),
	{ client_error_attempts => 1, follow_redirects => JSON::PP::true },
	['RedirectOrder']);
sql(q{INSERT INTO redirect_order (order_code, quantity) VALUES ('X-1', 1)});
my @x_ids = event_ids('RedirectOrder');
wait_accepted($r9t, \@x_ids, 30, 'redirect to the same host: followed and delivered');
is_deeply([ map { $_->{path} } receiver_log($r9t) ], ['/moved'],
	'the target got the one request of the endpoint that follows');
for my $ep ('nofollow', 'otherhost')
{
	ok(wait_until(
			sub {
				sql_bool(qq{SELECT count(*) = 1 FROM mfgsync.dead_letters
					WHERE endpoint = '$ep' AND last_status = 307
					  AND last_error ~ 'not followed'});
			},
			30),
		"$ep: 307 not followed, dead-lettered with the status");
}

# ---------------------------------------------------------------------
# 10. Subscription filter
# ---------------------------------------------------------------------
my $r10 = receiver('filtered');
order_table('filter_order', 'FilterOrder');
endpoint('filtered', receiver_url($r10), {}, ['FilterOrder'],
	q{data->>'machine_code' = 'M1'});
sql(q{INSERT INTO filter_order (order_code, machine_code, quantity)
	  SELECT 'FO-' || g, CASE WHEN g % 2 = 0 THEN 'M1' ELSE 'M2' END, g
	    FROM generate_series(1, 10) g;
	UPDATE filter_order SET machine_code = 'M1' WHERE order_code = 'FO-1';
	UPDATE filter_order SET machine_code = 'M3' WHERE order_code = 'FO-2';
	DELETE FROM filter_order WHERE order_code IN ('FO-3', 'FO-4');});
# independently of the outbox: Adds of FO-2,4,6,8,10 and FO-1's Change
my @want_filter = sort { $a <=> $b } split /\n/, sql(q{
	SELECT id FROM mfgsync.events WHERE message_type = 'FilterOrder'
	   AND ((action = 'Add' AND key->>'order_code' IN
	          ('FO-2', 'FO-4', 'FO-6', 'FO-8', 'FO-10'))
	        OR (action = 'Change' AND key->>'order_code' = 'FO-1'))});
is(scalar(@want_filter), 6, 'filter: six of the events have machine M1');
wait_accepted($r10, \@want_filter, 30, 'filter: the matching events arrive');
ok(wait_until(
		sub {
			sql_bool(q{SELECT pending = 0 FROM mfgsync.endpoint_status
				WHERE name = 'filtered'});
		},
		30),
	'filter: the endpoint has walked all its events');
is_deeply([ sort { $a <=> $b } map { $_->{id} } accepted_events($r10) ],
	\@want_filter, 'filter: only the matching events arrived');

# ---------------------------------------------------------------------
# 11. Commits wake the senders: no polling needed
# ---------------------------------------------------------------------
# earlier endpoints go: none of their timers (retries, back-offs) can wake
# a sender in place of the commit
sql(q{SELECT mfgsync.drop_endpoint(name) FROM mfgsync.endpoints});
sql(q{ALTER SYSTEM SET mfgsync.poll_interval = '1h'; SELECT pg_reload_conf()});
is(sql('SHOW mfgsync.poll_interval'), '1h', 'poll_interval is 1 hour');
my $r11 = receiver('wake');
order_table('wake_order', 'WakeOrder');
endpoint('wake', receiver_url($r11), {}, ['WakeOrder']);
sql(q{INSERT INTO wake_order (order_code, quantity) VALUES ('W-0', 0)});
wait_accepted($r11, [ event_ids('WakeOrder') ], 30, 'wake: a first event arrives');
for my $round (1 .. 2)
{
	# Not a synchronisation: a quiet spell lets every timer a sender had set
	# (position flushes after 1 s, back-offs) run out, so that only the
	# commit itself can wake it.
	Time::HiRes::sleep(2.5);
	my $t0 = time();
	sql(qq{INSERT INTO wake_order (order_code, quantity) VALUES ('W-$round', 0)});
	my ($id) = (event_ids('WakeOrder'))[-1];
	wait_accepted($r11, [$id], 5, "wake: round $round, the event arrives");
	my ($req) = grep { ($_->{headers}{'webhook-id'} // '') eq $id }
	  receiver_log($r11);
	ok($req && $req->{t} - $t0 < 2.0,
		"wake: round $round, delivered within 2 s of the commit")
	  or diag(sprintf('%.3f s', $req ? $req->{t} - $t0 : -1));
}

# ---------------------------------------------------------------------
# 12. An event committed after subscribe() committed reaches the endpoint,
# also when the endpoint was created in an earlier transaction (the sender
# may have read it without subscriptions).  A race, so tried twenty times.
# ---------------------------------------------------------------------
my $r12 = receiver('late');
order_table('late_order', 'LateOrder');
my %late_event;
for my $i (1 .. 20)
{
	# three transactions in one session, so that they follow at once
	sql(sprintf(q{SELECT mfgsync.create_endpoint('late-%d', %s);
		SELECT mfgsync.subscribe('late-%d', '{LateOrder}');
		INSERT INTO late_order (order_code, quantity) VALUES ('L-%d', %d);},
		$i, lit(receiver_url($r12, "/late/$i")), $i, $i, $i));
	$late_event{$i} = (event_ids('LateOrder'))[-1];
}
my @late_lost;
wait_until(
	sub {
		my %got;
		$got{ $_->{path} }{ $_->{headers}{'webhook-id'} // '' } = 1
		  for grep { answered_ok($_) } receiver_log($r12);
		@late_lost = grep { !$got{"/late/$_"}{ $late_event{$_} } } 1 .. 20;
		return !@late_lost;
	},
	10);
is("@late_lost", '',
	'subscribe, then an event at once: each endpoint gets its event');
sql(qq{SELECT mfgsync.drop_endpoint('late-$_')}) for 1 .. 20;

# ---------------------------------------------------------------------
# 13. TLS: peers are verified by default; ca_file trusts a private CA
# ---------------------------------------------------------------------
{
	my $dir = PostgreSQL::Test::Utils::tempdir('tls');
	my ($out, $err);
	IPC::Run::run(
		[ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
		  '-keyout', "$dir/key.pem", '-out', "$dir/cert.pem", '-days', '1',
		  '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1' ],
		'>', \$out, '2>', \$err) or die "openssl: $err";
	my $rt = receiver('tls', '--tls-cert', "$dir/cert.pem", '--tls-key', "$dir/key.pem");
	(my $https = receiver_url($rt)) =~ s/^http:/https:/;
	order_table('tls_order', 'TlsOrder');
	endpoint('tls_default', $https,
		{ max_attempts => 1, retry_initial_ms => 50, retry_max_ms => 100 },
		['TlsOrder']);
	endpoint('tls_ca', $https, { ca_file => "$dir/cert.pem" }, ['TlsOrder']);
	sql(q{INSERT INTO tls_order (order_code, quantity) VALUES ('T-1', 1)});
	my @tls_ids = event_ids('TlsOrder');
	wait_accepted($rt, \@tls_ids, 30, 'https with ca_file: delivered');
	ok(wait_until(
			sub {
				sql_bool(q{SELECT count(*) = 1 FROM mfgsync.dead_letters
					WHERE endpoint = 'tls_default' AND last_status IS NULL
					  AND last_error ~* 'certificate'});
			},
			30),
		'https to a self-signed certificate: refused by default, with the reason');
	is(scalar(grep { $_->{status} } receiver_log($rt)), 1,
		'only the endpoint that trusts the certificate got an answer');
}

stop_receiver($_) for @receivers;
@receivers = ();
$node->stop;

done_testing();
