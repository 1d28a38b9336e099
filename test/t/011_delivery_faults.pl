# Delivery under faults, against a real cluster and the real receiver
# (test/receiver.py) on 127.0.0.1: the workers in pg_stat_activity, SIGHUP
# reloads, SIGTERM in the middle of a transfer, a crash in the middle of a
# 100,000-event run, a sender killed with SIGKILL (crash recovery),
# retention, secrets kept out of the log, and DROP/CREATE EXTENSION under
# running workers.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use MfgTest;
use JSON::PP;
use MIME::Base64;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $t_start = time();

my $node = mfg_cluster('faults', q{
max_prepared_transactions = 5
max_worker_processes = 16
restart_after_crash = on
});

# ---------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------

sub sql { return $node->safe_psql('postgres', $_[0]); }

# the server log from a byte offset on
sub log_pos { return -s $node->logfile; }
sub log_since { return slurp_file($node->logfile, $_[0]); }

# lines of the server log that say something went wrong
sub bad_lines
{
	my ($text) = @_;
	return join '', grep { /ERROR:|FATAL:|PANIC:|TRAP:|terminated by signal|exited with exit code|mfgsync: .* failed/ }
	  split /^/, $text;
}

# the receiver's log is read with MfgTest's tail_new / tail_read

# requests of a receiver whose webhook-id is $id (full JSON decode)
sub requests_for
{
	my ($r, $id) = @_;
	return scalar grep { ($_->{headers}{'webhook-id'} // '') eq $id }
	  receiver_log($r);
}

sub endpoint
{
	my ($name, $r, $types, $options) = @_;
	$options //= '{}';
	my $url = ref $r ? receiver_url($r) : $r;
	sql(qq{SELECT mfgsync.create_endpoint('$name', '$url', 'webhook', '$options');
		   SELECT mfgsync.subscribe('$name', '$types');});
	return sql(qq{SELECT id FROM mfgsync.endpoint WHERE name = '$name'});
}

sub workers
{
	return sql(q{SELECT backend_type || '|' || application_name || '|' || pid
				   FROM pg_stat_activity
				  WHERE backend_type LIKE 'mfgsync%' ORDER BY 1});
}

sub sender_count
{
	my $n = '';
	eval {
		$n = sql(q{SELECT count(*) FROM pg_stat_activity
					WHERE backend_type = 'mfgsync sender'});
	};
	return $n eq '' ? -1 : $n;
}

# reload and wait until a new session sees the setting's new value
sub set_and_reload
{
	my ($name, $value, $shown) = @_;
	sql(defined $value
		? qq{ALTER SYSTEM SET $name = '$value'; SELECT pg_reload_conf();}
		: qq{ALTER SYSTEM RESET $name; SELECT pg_reload_conf();});
	return wait_until(sub { sql("SHOW $name") eq $shown }, 10, "$name = $shown");
}

# ---------------------------------------------------------------------
# 5. the workers in pg_stat_activity
# ---------------------------------------------------------------------
ok(wait_until(sub { sender_count() == 2 }, 15, 'two senders'),
	'launcher starts mfgsync.max_workers = 2 senders')
  or diag(workers());
is( sql(q{SELECT string_agg(backend_type || '/' || application_name || '/' || datname, ',' ORDER BY application_name)
			FROM pg_stat_activity WHERE backend_type LIKE 'mfgsync%'}),
	'mfgsync launcher/mfgsync launcher/postgres,'
	  . 'mfgsync sender/mfgsync sender 0/postgres,'
	  . 'mfgsync sender/mfgsync sender 1/postgres',
	'pg_stat_activity: backend_type and application_name of launcher and senders');

# ---------------------------------------------------------------------
# 2. SIGHUP: mfgsync.batch_size and mfgsync.poll_interval reloaded
# ---------------------------------------------------------------------
{
	my $t0 = time();
	my $off = log_pos();
	sql(q{CREATE TABLE batch_t (id int PRIMARY KEY, v int);
		  SELECT mfgsync.track('batch_t', 'Batch');});
	my $r = start_receiver('batch');
	my $ep_batch = endpoint('batch', $r, '{Batch}', '{"envelope": "cloudevents-batch"}');

	# events per request of a CloudEvents batch: the number of "id"s
	my $sizes = sub {
		my ($from) = @_;
		my @log = receiver_log($r);
		my (@n, %ids);
		for my $req (@log[ $from .. $#log ])
		{
			my $batch = decode_json($req->{body});
			push @n, scalar @$batch;
			$ids{ $_->{id} } = 1 for @$batch;
		}
		return (\@n, scalar keys %ids);
	};

	ok(set_and_reload('mfgsync.batch_size', 5, '5'), 'batch_size = 5 reloaded');
	sql(q{INSERT INTO batch_t SELECT g, 0 FROM generate_series(1, 60) g});
	ok(wait_until(sub { ($sizes->(0))[1] == 60 }, 20, '60 events'),
		'60 events delivered after the reload');
	my ($n1) = $sizes->(0);
	my $max1 = (sort { $b <=> $a } @$n1)[0] // 0;
	ok($max1 >= 1 && $max1 <= 5, "batch_size 5: at most 5 events per request (max $max1)");
	my $seen = scalar receiver_log($r);

	ok(set_and_reload('mfgsync.batch_size', 40, '40'), 'batch_size = 40 reloaded');
	sql(q{INSERT INTO batch_t SELECT g, 0 FROM generate_series(61, 120) g});
	ok(wait_until(sub { ($sizes->($seen))[1] == 60 }, 20, '60 more'),
		'60 more events delivered after the second reload');
	my ($n2) = $sizes->($seen);
	my $max2 = (sort { $b <=> $a } @$n2)[0] // 0;
	ok($max2 > 5 && $max2 <= 40,
		"batch_size 40 in effect: larger batches (max $max2 events per request)");

	# poll_interval: the senders' fallback timer.  Each wake claims (and
	# reports an activity: pg_stat_activity.state_change moves), so the
	# sender of this endpoint wakes ~5 times a second at 200ms and is quiet
	# at 60s.  And an event of COMMIT PREPARED, which wakes no sender, is
	# found by the timer.
	my $app = 'mfgsync sender ' . ($ep_batch % 2);
	my $wakes = sub {
		my ($want, $seconds) = @_;
		my %seen;
		wait_until(
			sub {
				$seen{ sql(qq{SELECT state_change FROM pg_stat_activity
							   WHERE application_name = '$app'}) } = 1;
				keys %seen >= $want;
			},
			$seconds,
			'wakes');
		return scalar keys %seen;
	};
	ok(set_and_reload('mfgsync.poll_interval', '60s', '1min'),
		'poll_interval = 60s reloaded');
	my $quiet = $wakes->(8, 4);
	note("poll_interval 60s: $quiet activity changes of $app in 4 s");
	my $before = scalar receiver_log($r);
	sql(q{BEGIN; INSERT INTO batch_t VALUES (1001, 0);
		  PREPARE TRANSACTION 'p1'; COMMIT PREPARED 'p1';});
	ok(set_and_reload('mfgsync.poll_interval', '200ms', '200ms'),
		'poll_interval = 200ms reloaded');
	ok(wait_until(sub { scalar receiver_log($r) > $before }, 5, 'p1'),
		'an event of COMMIT PREPARED is delivered');
	my $busy = $wakes->(15, 6);
	ok($busy >= 15 && $quiet < 8,
		"poll_interval 200ms in effect: $busy activity changes of $app within 6 s (60s: $quiet in 4 s)");
	$before = scalar receiver_log($r);
	my $t1 = time();
	sql(q{BEGIN; INSERT INTO batch_t VALUES (1002, 0);
		  PREPARE TRANSACTION 'p2'; COMMIT PREPARED 'p2';});
	ok(wait_until(sub { scalar receiver_log($r) > $before }, 3, 'p2'),
		'poll_interval 200ms: a COMMIT PREPARED event arrives within 3 s');
	note(sprintf('COMMIT PREPARED event delivered after %.2f s', time() - $t1));

	is(bad_lines(log_since($off)), '', 'no error in the server log across the reloads');
	ok(set_and_reload('mfgsync.batch_size', undef, '100'), 'batch_size reset');
	ok(set_and_reload('mfgsync.poll_interval', undef, '10s'), 'poll_interval reset');
	sql(q{SELECT mfgsync.drop_endpoint('batch')});
	stop_receiver($r);
	note(sprintf('SIGHUP section: %.1f s', time() - $t0));
}

# ---------------------------------------------------------------------
# 3. SIGTERM in the middle of a transfer
# ---------------------------------------------------------------------
# The receiver logs a request only after --delay-ms, so a delayed request
# cannot be seen while in flight; --hang logs it at once and never answers,
# which is the same situation with a delay longer than any test.
{
	my $t0 = time();
	sql(q{CREATE TABLE slow_t (id int PRIMARY KEY, v int);
		  SELECT mfgsync.track('slow_t', 'Slow');});
	my $r = start_receiver('hang', '--hang');
	my $ep = endpoint('hang', $r, '{Slow}', '{"timeout_ms": 60000}');
	my $app = 'mfgsync sender ' . ($ep % 2);
	my $pid_q = qq{SELECT pid FROM pg_stat_activity WHERE application_name = '$app'};
	my $pid = sql($pid_q);
	like($pid, qr/^\d+$/, "the endpoint's sender ($app) runs");

	sql(q{INSERT INTO slow_t VALUES (1, 1)});
	my $id = sql(q{SELECT id FROM mfgsync.events WHERE message_type = 'Slow'});
	ok(wait_until(sub { requests_for($r, $id) >= 1 }, 15, 'request in flight'),
		'the request is at the receiver, unanswered');

	my $t1 = time();
	sql(qq{SELECT pg_terminate_backend($pid)});
	ok(wait_until(sub { sql(qq{SELECT count(*) FROM pg_stat_activity WHERE pid = $pid}) == 0 }, 2, 'exit'),
		'SIGTERM: the sender exits within 2 s in the middle of a transfer');
	note(sprintf('sender gone after %.2f s', time() - $t1));
	my $newpid = '';
	ok( wait_until(
			sub { $newpid = sql($pid_q); $newpid =~ /^\d+$/ && $newpid != $pid },
			15, 'restart'),
		'a new sender takes its place');
	ok(wait_until(sub { requests_for($r, $id) >= 2 }, 15, 'again'),
		'the event is sent again by the new sender (at-least-once)');
	note('requests for event ' . $id . ': ' . requests_for($r, $id));
	is(sql(qq{SELECT count(*) FROM pg_stat_activity WHERE application_name = '$app'}),
		'1', 'exactly one process is ' . $app);
	sql(q{SELECT mfgsync.drop_endpoint('hang')});
	stop_receiver($r);
	note(sprintf('SIGTERM section: %.1f s', time() - $t0));
}

# ---------------------------------------------------------------------
# 1. Crash (-m immediate) in the middle of a 100,000-event run
# ---------------------------------------------------------------------
{
	my $t0 = time();
	sql(q{CREATE TABLE item (id int PRIMARY KEY, k int NOT NULL, v int NOT NULL);
		  SELECT mfgsync.track('item', 'Item', ARRAY['k']);});
	my $r = start_receiver('crash');
	endpoint('crash', $r, '{Item}');
	my $tail = tail_new($r);

	# 20,000 rows over 2,000 keys, then 4 updates of every row: 50 events
	# per key, 100,000 in all, in 5 transactions
	sql(q{INSERT INTO item SELECT g, g % 2000, 0 FROM generate_series(1, 20000) g;
		  UPDATE item SET v = 1;
		  UPDATE item SET v = 2;
		  UPDATE item SET v = 3;
		  UPDATE item SET v = 4;});
	my @ids = split /\n/,
	  sql(q{SELECT id FROM mfgsync.events WHERE message_type = 'Item' ORDER BY id});
	is(scalar @ids, 100000, '100,000 events captured');
	note(sprintf('captured in %.1f s', time() - $t0));

	ok(wait_until(sub { @{ tail_read($tail) } > 5000 }, 60, '5000 requests'),
		'more than 5,000 requests arrived');
	$node->stop('immediate');
	my $at_crash = @{ tail_read($tail) };
	note(sprintf('crash after %d requests, %.1f s after the commits', $at_crash, time() - $t0));
	ok($at_crash < 100000, "the crash came in the middle of the run ($at_crash of 100,000 requests)");
	$node->start;

	my %want = map { $_ => 1 } @ids;
	my %got;
	my $pos = 0;
	my $arrived = 0;
	my $count_new = sub {
		my $reqs = tail_read($tail);
		for (; $pos < @$reqs; $pos++)
		{
			my $id = $reqs->[$pos]{id};
			next unless defined $id;
			$arrived++ if !$got{$id}++ && $want{$id};
		}
		return $arrived;
	};
	my $t1 = time();
	ok(wait_until(sub { $count_new->() == 100000 }, 180, 'all ids'),
		'every captured event arrived at least once after the crash')
	  or diag('arrived: ' . $count_new->() . ' of 100000');
	note(sprintf('all arrived %.1f s after the restart', time() - $t1));

	my $reqs = tail_read($tail);
	my @stray = grep { !$want{$_} } keys %got;
	is(scalar @stray, 0, 'no request for an event that was not captured')
	  or diag("stray ids: @stray[0 .. ($#stray < 9 ? $#stray : 9)]");

	# the regular expressions of tail_read agree with a real JSON parse
	my $agree = 1;
	for my $line (@{ $tail->{raw} })
	{
		my $req = decode_json($line);
		my $body = decode_json($req->{body});
		my ($wid) = $line =~ /"webhook-id": "([^"]*)"/;
		my ($key) = $line =~ /\\"key\\":(\{[^}]*\})/;
		$key =~ s/\\"/"/g;
		$agree = 0
		  unless $wid eq $body->{id} && $wid eq $req->{headers}{'webhook-id'}
		  && JSON::PP->new->canonical->encode(decode_json($key))
		  eq JSON::PP->new->canonical->encode($body->{key});
	}
	ok($agree && @{ $tail->{raw} } == 200, 'the log parser agrees with JSON::PP on 200 requests');

	is(per_key_order_ok([ grep { defined $_->{id} } @$reqs ]), '',
		'per key, first arrivals are in event order across the crash');
	isnt(per_key_order_ok([ reverse grep { defined $_->{id} } @$reqs ]), '',
		'(the order check finds the requests reversed out of order)');
	my $dups = @$reqs - scalar keys %got;
	note("requests: " . scalar(@$reqs) . ", duplicates (redelivered after the crash): $dups");
	is(scalar(grep { $_->{message_type} ne 'Item' } grep { defined $_->{id} } @$reqs), 0,
		'every request is an Item event');
	sql(q{SELECT mfgsync.drop_endpoint('crash')});
	stop_receiver($r);
	note(sprintf('crash section: %.1f s', time() - $t0));
}

# ---------------------------------------------------------------------
# 6. Retention: retire() deletes settled events, VACUUM shrinks the outbox
# ---------------------------------------------------------------------
{
	my $t0 = time();
	sql(q{CREATE TABLE ret_t (id int PRIMARY KEY, v int);
		  SELECT mfgsync.track('ret_t', 'Ret');});
	my $r = start_receiver('ret');
	endpoint('ret', $r, '{Ret}');
	my $tail = tail_new($r);
	sql(q{INSERT INTO ret_t SELECT g, 0 FROM generate_series(1, 20000) g});
	ok(wait_until(sub { @{ tail_read($tail) } >= 20000 }, 60, '20000'),
		'20,000 events delivered');

	# every endpoint's position is past every event
	ok( wait_until(
			sub {
				sql(q{SELECT count(*) FROM mfgsync.outbox o
					   WHERE o.txid >= (SELECT min(pg_snapshot_xmin(low)::text::bigint)
										  FROM mfgsync.endpoint_state)}) == 0
			},
			30,
			'settled'),
		'every endpoint has settled every event');
	my $size_before = sql(q{SELECT pg_relation_size('mfgsync.outbox')});

	# retire() by hand with retention 0 for this transaction only (a
	# superuser may SET it); the launcher still keeps 7 days
	my $out = sql(q{BEGIN;
		SET LOCAL mfgsync.retention = 0;
		LOCK TABLE mfgsync.outbox IN SHARE ROW EXCLUSIVE MODE;
		SELECT count(*) FROM mfgsync.outbox;
		SELECT mfgsync.retire();
		SELECT count(*) FROM mfgsync.outbox;
		COMMIT;});
	my ($n_before, $retired, $n_after) = split /\n/, $out;
	note("outbox: $n_before events, retire() returned $retired, $n_after left");
	ok($n_before >= 120000, "the outbox held the events of this test ($n_before)");
	is($retired, $n_before, 'retire() deletes every settled event and returns how many');
	is($n_after, 0, 'the outbox is empty');

	sql(q{VACUUM mfgsync.outbox});
	my $size_after = sql(q{SELECT pg_relation_size('mfgsync.outbox')});
	note("outbox size: $size_before bytes before, $size_after after VACUUM");
	ok($size_after < $size_before / 10, 'VACUUM gives the space back (< 10% of before)');

	# the launcher retires by itself: every second at retention 0
	ok(set_and_reload('mfgsync.retention', 0, '0'), 'retention = 0 reloaded');
	sql(q{INSERT INTO ret_t SELECT g, 1 FROM generate_series(20001, 21000) g});
	ok(wait_until(sub { @{ tail_read($tail) } >= 21000 }, 30, '1000 more'),
		'1,000 more events delivered');
	my $left = '';
	ok(wait_until(sub { ($left = sql(q{SELECT count(*) FROM mfgsync.outbox})) == 0 }, 15, 'launcher retires'),
		'the launcher retires delivered events by itself (retention 0)')
	  or diag("$left events left in the outbox, created at "
		  . sql(q{SELECT min(created_at) || ' .. ' || max(created_at) FROM mfgsync.outbox})
		  . '; launcher started at '
		  . sql(q{SELECT backend_start FROM pg_stat_activity WHERE backend_type = 'mfgsync launcher'}));
	ok(set_and_reload('mfgsync.retention', undef, '7d'), 'retention reset');

	# retire() stops below the first event some endpoint has not passed:
	# a paused endpoint keeps the events written after it was created
	sql(q{SELECT mfgsync.create_endpoint('held', 'http://127.0.0.1:9/held');
		  SELECT mfgsync.subscribe('held', ARRAY['Ret']);
		  SELECT mfgsync.pause_endpoint('held');});
	sql(q{INSERT INTO ret_t SELECT g, 2 FROM generate_series(30001, 30010) g});
	ok(wait_until(sub { @{ tail_read($tail) } >= 21010 }, 30, '10 more'),
		'10 more events delivered to the endpoint that is not paused');
	my $retire_now = q{BEGIN; SET LOCAL mfgsync.retention = 0;
		SELECT mfgsync.retire(); COMMIT;};
	sql($retire_now);
	is(sql(q{SELECT count(*) || ' ' || min(key->>'id') || '-' || max(key->>'id')
			   FROM mfgsync.events}),
		'10 30001-30010', 'retire() keeps what the paused endpoint has not settled');
	sql(q{SELECT mfgsync.drop_endpoint('held')});
	sql($retire_now);
	is(sql(q{SELECT count(*) FROM mfgsync.events}), '0',
		'and retires them once that endpoint is gone');
	sql(q{SELECT mfgsync.drop_endpoint('ret')});
	stop_receiver($r);
	note(sprintf('retention section: %.1f s', time() - $t0));
}

# ---------------------------------------------------------------------
# 7. Secrets are never logged, and only admins read them
# ---------------------------------------------------------------------
{
	my $t0 = time();
	my $secret_b64 = encode_base64('first-secret-of-011-faults-0123456789', '');
	my $secret = "whsec_$secret_b64";
	my $secret2_b64 = encode_base64('second-secret-of-011-faults-987654321', '');
	my $secret2 = "whsec_$secret2_b64";
	my $off = log_pos();

	sql(q{CREATE TABLE sec_t (id int PRIMARY KEY, v int);
		  SELECT mfgsync.track('sec_t', 'Sec');});
	my $r = start_receiver('s500', '--status', '500', '--secret', $secret);
	# the test's own statements are not logged (log_statement = all in TAP
	# clusters would log the literal); what the extension logs is checked
	my $opts = qq{{"secret": "$secret", "max_attempts": 2, "retry_initial_ms": 100, "retry_max_ms": 200}};
	$node->safe_psql('postgres', qq{SET log_statement = 'none';
		SELECT mfgsync.create_endpoint('s500', '@{[receiver_url($r)]}', 'webhook', '$opts');
		SELECT mfgsync.subscribe('s500', '{Sec}');
		SELECT mfgsync.create_endpoint('sdown', 'http://127.0.0.1:1/hook', 'webhook',
			'{"secret": "$secret2", "retry_initial_ms": 100, "retry_max_ms": 200, "connect_timeout_ms": 500}');
		SELECT mfgsync.subscribe('sdown', '{Sec}');});
	sql(q{INSERT INTO sec_t SELECT g, 0 FROM generate_series(1, 3) g});
	ok( wait_until(
			sub {
				sql(q{SELECT count(*) FROM mfgsync.failures WHERE endpoint = 's500'}) >= 3
				  && sql(q{SELECT count(*) FROM mfgsync.failures WHERE endpoint = 'sdown'}) > 0
			},
			30,
			'failures'),
		'deliveries fail: 500 answers, connections refused');
	my @reqs = receiver_log($r);
	ok(@reqs >= 3 && !grep({ !$_->{sig_ok} } @reqs),
		'the failing requests were signed with the secret (' . scalar(@reqs) . ' requests)');
	ok( wait_until(
			sub { sql(q{SELECT count(*) FROM mfgsync.dead_letters WHERE endpoint = 's500'}) == 3 },
			10, 'dead'),
		'500 answers are retried and dead-lettered after max_attempts = 2')
	  or diag(sql(q{SELECT 'retry: event ' || event_id || ', attempts ' || attempts || ', next_attempt_at '
						   || next_attempt_at || ', now() ' || now() FROM mfgsync.retry})
		  . "\n"
		  . sql(q{SELECT 'failures recorded at ' || string_agg(DISTINCT failed_at::text, ', ')
						   || '; senders started at '
						   || (SELECT string_agg(backend_start::text, ', ') FROM pg_stat_activity
							    WHERE backend_type = 'mfgsync sender')
					  FROM mfgsync.failures WHERE endpoint = 's500'}));
	# a rotation, and the dead letters replayed
	$node->safe_psql('postgres', qq{SET log_statement = 'none';
		SELECT mfgsync.alter_endpoint('s500', '{"secret": "$secret2", "previous_secret": "$secret"}');});
	sql(q{SELECT mfgsync.replay('s500', ARRAY(SELECT event_id FROM mfgsync.dead_letters WHERE endpoint = 's500'))});
	my $n = scalar receiver_log($r);
	ok(wait_until(sub { scalar(receiver_log($r)) >= $n + 3 }, 10, 'replayed'),
		'replayed events are sent again');

	my $log = log_since($off);
	like($log, qr/mfgsync: endpoint "(s500|sdown)"/, 'the failures are in the server log');
	# the whole secret, or any 16 characters of its base64
	my $leaks = sub {
		my ($text) = @_;
		for my $s ($secret_b64, $secret2_b64)
		{
			for (my $i = 0; $i + 16 <= length $s; $i += 4)
			{
				return 1 if index($text, substr($s, $i, 16)) >= 0;
			}
		}
		return 0;
	};
	ok(!$leaks->($log), 'no secret (nor a 16-character piece of one) in the server log');
	ok($leaks->("x $secret y"), '(the leak check finds a secret)');
	my $views = sql(q{SELECT string_agg(x, ' ') FROM (
		SELECT e::text AS x FROM mfgsync.endpoints e
		UNION ALL SELECT f::text FROM mfgsync.failures f
		UNION ALL SELECT d::text FROM mfgsync.dead_letters d
		UNION ALL SELECT s::text FROM mfgsync.endpoint_status s) v});
	ok(!$leaks->($views),
		'no secret in endpoints, failures, dead_letters, endpoint_status');

	sql(q{CREATE ROLE plain_user; CREATE ROLE monitor_user IN ROLE mfgsync_monitor;
		  CREATE ROLE admin_user IN ROLE mfgsync_admin;});
	for my $role (qw(plain_user monitor_user))
	{
		my ($rc, $o, $e) = $node->psql('postgres',
			qq{SET ROLE $role; SELECT secret FROM mfgsync.endpoint_secret});
		ok($rc != 0 && $e =~ /permission denied/ && $o !~ /whsec/,
			"$role cannot read mfgsync.endpoint_secret");
	}
	my ($rc, $o, $e) = $node->psql('postgres',
		q{SET ROLE monitor_user; SELECT count(*) FROM mfgsync.endpoint_status});
	ok($rc == 0 && $o > 0, 'monitor_user reads endpoint_status');
	is( $node->safe_psql('postgres',
			q{SET ROLE admin_user; SELECT count(*) FROM mfgsync.endpoint_secret}),
		'2', 'admin_user reads the secrets');

	sql(q{SELECT mfgsync.drop_endpoint('s500'); SELECT mfgsync.drop_endpoint('sdown');});
	stop_receiver($r);
	note(sprintf('secrets section: %.1f s', time() - $t0));
}

# ---------------------------------------------------------------------
# 4. A sender killed with SIGKILL: crash recovery, new workers, deliveries
# ---------------------------------------------------------------------
{
	my $t0 = time();
	my $r = start_receiver('kill');
	sql(q{CREATE TABLE kill_t (id int PRIMARY KEY, v int);
		  SELECT mfgsync.track('kill_t', 'Kill');});
	endpoint('kill', $r, '{Kill}');
	my $launcher = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'mfgsync launcher'});
	my @senders = split /\n/,
	  sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'mfgsync sender'});
	my $off = log_pos();
	ok(kill('KILL', $senders[0]), "SIGKILL to sender $senders[0]");

	ok(wait_until(sub { log_since($off) =~ /all server processes terminated; reinitializing/ }, 30,
			'reinit'),
		'the postmaster reinitializes after the crash');
	my $state = '';
	ok( wait_until(
			sub {
				eval {
					$state = sql(q{SELECT string_agg(DISTINCT application_name, ',' ORDER BY application_name)
								   || ' ' || (SELECT pid FROM pg_stat_activity WHERE backend_type = 'mfgsync launcher')
								   FROM pg_stat_activity WHERE backend_type LIKE 'mfgsync%'});
				};
				$state =~ /^mfgsync launcher,mfgsync sender 0,mfgsync sender 1 (\d+)$/ && $1 != $launcher;
			},
			30,
			'new workers'),
		'a new launcher and senders 0 and 1 run after crash recovery')
	  or diag($state);
	my %old = map { $_ => 1 } ($launcher, @senders);
	my @pids = split /\n/, sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type LIKE 'mfgsync%'});
	ok(!grep({ $old{$_} } @pids), 'every worker is a new process');

	# settle: then exactly one process per sender number
	my $dups = wait_until(
		sub {
			sql(q{SELECT count(*) > count(DISTINCT application_name) FROM pg_stat_activity
				   WHERE backend_type = 'mfgsync sender'}) eq 't';
		},
		5,
		'duplicates');
	ok(!$dups, 'one process per sender number after crash recovery (max_workers = 2)')
	  or diag(workers());

	sql(q{INSERT INTO kill_t SELECT g, 0 FROM generate_series(1, 100) g});
	my @ids = split /\n/, sql(q{SELECT id FROM mfgsync.events WHERE message_type = 'Kill'});
	my %want = map { $_ => 1 } @ids;
	ok( wait_until(
			sub {
				my %got = map { ($_->{headers}{'webhook-id'} // '') => 1 } receiver_log($r);
				!grep { !$got{$_} } @ids;
			},
			30,
			'delivered'),
		'events committed after the crash are delivered');
	note('requests for 100 events after the crash: ' . scalar(receiver_log($r)));
	stop_receiver($r);    # the endpoint stays: senders have work at the DROP
	note(sprintf('SIGKILL section: %.1f s', time() - $t0));
}

# ---------------------------------------------------------------------
# 4b. The launcher terminated alone: its senders leave, one new set runs,
# and nothing is sent twice
# ---------------------------------------------------------------------
{
	my $r = start_receiver('relaunch');
	sql(q{CREATE TABLE relaunch_t (id int PRIMARY KEY, v int);
		  SELECT mfgsync.track('relaunch_t', 'Relaunch');});
	endpoint('relaunch', $r, '{Relaunch}');
	my $launcher = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'mfgsync launcher'});
	my %old = map { $_ => 1 } split /\n/,
	  sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'mfgsync sender'});
	my $off = log_pos();
	sql(qq{SELECT pg_terminate_backend($launcher)});
	ok( wait_until(
			sub {
				my @now = split /\n/, sql(q{SELECT pid FROM pg_stat_activity
					WHERE backend_type = 'mfgsync sender'});
				@now == 2 && !grep { $old{$_} } @now;
			},
			30,
			'new senders'),
		'launcher terminated alone: two senders run, none of the old ones')
	  or diag(workers());
	like(log_since($off), qr/mfgsync sender \d exiting: a new launcher started/,
		'the old senders say why they leave');
	sql(q{INSERT INTO relaunch_t SELECT g, 0 FROM generate_series(1, 200) g});
	my @ids = split /\n/, sql(q{SELECT id FROM mfgsync.events WHERE message_type = 'Relaunch'});
	ok( wait_until(
			sub {
				my %got = map { ($_->{headers}{'webhook-id'} // '') => 1 } receiver_log($r);
				!grep { !$got{$_} } @ids;
			},
			30,
			'delivered'),
		'events after the new launcher are delivered');
	is(scalar(receiver_log($r)), scalar(@ids), 'each of them exactly once');
	sql(q{SELECT mfgsync.drop_endpoint('relaunch')});
	stop_receiver($r);
}

# ---------------------------------------------------------------------
# 8. DROP EXTENSION under running workers, then CREATE EXTENSION again
# ---------------------------------------------------------------------
{
	my $t0 = time();
	my $nsenders = sender_count();
	my $off = log_pos();
	sql(q{DROP EXTENSION mfgsync CASCADE});
	ok( wait_until(
			sub {
				my @l = log_since($off) =~
				  /mfgsync sender \d+ exiting: extension "mfgsync" does not exist/g;
				@l >= $nsenders;
			},
			15,
			'exiting'),
		'every sender logs "exiting: extension ... does not exist" within 15 s');
	ok(wait_until(sub { sender_count() == 0 }, 5, 'gone'),
		'no sender runs while the extension does not exist')
	  or diag(workers());
	is(sql(q{SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mfgsync launcher'}),
		'1', 'the launcher keeps waiting for the extension');
	my $log = log_since($off);
	unlike($log, qr/terminated by signal|exited with exit code|PANIC|TRAP/,
		'no worker crashed');
	note('server log after DROP EXTENSION:' . "\n" . bad_lines($log));

	my $t1 = time();
	sql(q{CREATE EXTENSION mfgsync;
		  CREATE TABLE again_t (id int PRIMARY KEY, v int);
		  SELECT mfgsync.track('again_t', 'Again');});
	my $r = start_receiver('again');
	endpoint('again', $r, '{Again}');
	sql(q{INSERT INTO again_t VALUES (1, 1)});
	my $id = sql(q{SELECT id FROM mfgsync.events WHERE message_type = 'Again'});
	ok(wait_until(sub { requests_for($r, $id) >= 1 }, 20, 'delivered'),
		'a new endpoint gets its event after CREATE EXTENSION');
	note(sprintf('delivered %.1f s after CREATE EXTENSION', time() - $t1));
	ok( wait_until(
			sub {
				sql(q{SELECT string_agg(DISTINCT application_name, ',') FROM pg_stat_activity
					   WHERE backend_type = 'mfgsync sender'}) eq 'mfgsync sender 0,mfgsync sender 1';
			},
			15,
			'senders'),
		'senders 0 and 1 run again');
	stop_receiver($r);
	note(sprintf('DROP EXTENSION section: %.1f s', time() - $t0));
}

note(sprintf('total: %.1f s', time() - $t_start));
$node->stop;
done_testing();
