# Endpoints split into shards (option "workers"), against real receivers
# (test/receiver.py) on 127.0.0.1: each shard delivers exactly its share of
# the keys, per-key order holds and every event arrives with 30% of answers
# 500, a re-cut from 2 to 3 shards under load, a 410 that pauses every
# shard, replay, and a crash in the middle of a 50,000-event run.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use JSON::PP;
use MfgTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = mfg_cluster('shards', q{
max_worker_processes = 16
restart_after_crash = on
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# an endpoint for message type $type at receiver $r
sub endpoint
{
	my ($name, $r, $type, $options) = @_;
	sql(qq{BEGIN;
		   SELECT mfgsync.create_endpoint('$name', '} . receiver_url($r) . qq{', 'webhook', '$options');
		   SELECT mfgsync.subscribe('$name', '{$type}');
		   COMMIT;});
	return sql(qq{SELECT id FROM mfgsync.endpoint WHERE name = '$name'});
}

# a table tracked as $type whose events have the key column k
sub item_table
{
	my ($table, $type) = @_;
	sql(qq{CREATE TABLE $table (id int PRIMARY KEY, k int NOT NULL, v int NOT NULL);
		   SELECT mfgsync.track('$table', '$type', ARRAY['k']);});
	return;
}

sub event_ids
{
	my ($type) = @_;
	return split /\n/,
	  sql(qq{SELECT id FROM mfgsync.events WHERE message_type = '$type' ORDER BY id});
}

# the receiver's log is read with MfgTest's tail_new / tail_read

# the requests answered 2xx, in arrival order
sub accepted
{
	my ($t) = @_;
	return [ grep { defined $_->{id} && ($_->{status} // 0) >= 200 && $_->{status} < 300 }
		  @{ tail_read($t) } ];
}

# wait until every id of @$ids was accepted at least once
sub wait_all_accepted
{
	my ($t, $ids, $seconds, $what) = @_;
	my %want = map { $_ => 1 } @$ids;
	my (%got, $n);
	my $pos = 0;
	my $ok = wait_until(
		sub {
			my $acc = accepted($t);
			for (; $pos < @$acc; $pos++)
			{
				my $id = $acc->[$pos]{id};
				$n++ if $want{$id} && !$got{$id}++;
			}
			return ($n // 0) == @$ids;
		},
		$seconds, $what);
	ok($ok, $what) or diag(($n // 0) . ' of ' . scalar(@$ids) . ' accepted');
	return $ok;
}

# per shard: the events delivered, and the events of its keys
sub shard_counts
{
	my ($ep, $type, $n) = @_;
	return (
		sql(qq{SELECT string_agg(shard || ':' || delivered, ' ' ORDER BY shard)
				 FROM mfgsync.endpoint_state WHERE endpoint_id = $ep}),
		sql(qq{SELECT string_agg(s || ':' || c, ' ' ORDER BY s)
				 FROM (SELECT mfgsync.shard_of(message_type || ' ' || coalesce(key::text, ''), $n) AS s,
							  count(*) AS c
						 FROM mfgsync.outbox WHERE message_type = '$type' GROUP BY 1) AS x}));
}

# ---------------------------------------------------------------------
# 1. Two shards, 30% of answers 500
# ---------------------------------------------------------------------
{
	my $r = start_receiver('flaky', '--fail-rate', '0.3', '--fail-status', '500',
		'--seed', '7');
	item_table('flaky', 'Flaky');
	my $ep = endpoint('flaky', $r, 'Flaky',
		'{"workers": 2, "concurrency": 8, "retry_initial_ms": 20, "retry_max_ms": 200, "max_attempts": 100}');
	is(sql(qq{SELECT count(*) FROM mfgsync.endpoint_state WHERE endpoint_id = $ep}),
		'2', 'flaky: two shards, one position each');
	my $t = tail_new($r);

	# 200 keys, 10 events each, in 10 transactions
	sql(q{INSERT INTO flaky SELECT g, g, 0 FROM generate_series(1, 200) g});
	sql(join ";\n", map { "UPDATE flaky SET v = $_" } 1 .. 9);
	my @ids = event_ids('Flaky');
	is(scalar @ids, 2000, 'flaky: 2,000 events over 200 keys');
	wait_all_accepted($t, \@ids, 120, 'flaky: every event accepted');
	is(per_key_order_ok(accepted($t)), '', 'flaky: per-key order across both shards');
	ok(scalar(grep { ($_->{status} // 0) == 500 } @{ tail_read($t) }) > 100,
		'flaky: the receiver did answer 500s');
	ok(wait_until(sub {
				sql(q{SELECT pending = 0 AND delivered = 2000 FROM mfgsync.endpoint_status
					   WHERE name = 'flaky'}) eq 't' }, 30),
		'flaky: endpoint_status adds up the shards: 2,000 delivered, none pending');
	my ($delivered, $share) = shard_counts($ep, 'Flaky', 2);
	is($delivered, $share, "flaky: each shard delivered exactly its keys' events ($delivered)");
	unlike($delivered, qr/:0\b/, 'flaky: both shards delivered');
	is(sql(q{SELECT count(*) FROM mfgsync.retry}), '0', 'flaky: no retry rows left');
	is(sql(q{SELECT count(DISTINCT pid) FROM pg_stat_activity
			  WHERE backend_type = 'mfgsync sender'}), '2', 'two senders run');
	sql(q{SELECT mfgsync.drop_endpoint('flaky')});
	stop_receiver($r);
}

# ---------------------------------------------------------------------
# 2. Re-cut from 2 to 3 shards while events flow
# ---------------------------------------------------------------------
{
	my $r = start_receiver('recut');
	item_table('recut', 'Recut');
	my $ep = endpoint('recut', $r, 'Recut', '{"workers": 2, "concurrency": 4}');
	my $t = tail_new($r);
	sql(q{INSERT INTO recut SELECT g, g % 500, 0 FROM generate_series(1, 5000) g;
		  UPDATE recut SET v = 1;
		  UPDATE recut SET v = 2;
		  UPDATE recut SET v = 3;});
	my @ids = event_ids('Recut');
	is(scalar @ids, 20000, 'recut: 20,000 events over 500 keys');
	ok(wait_until(sub { @{ accepted($t) } > 2000 }, 60), 'recut: delivery under way');
	sql(q{SELECT mfgsync.alter_endpoint('recut', '{"workers": 3}')});
	my $at = @{ accepted($t) };
	ok($at < 20000, "recut: re-cut in the middle of the run (after $at requests)");
	sql(q{INSERT INTO recut SELECT g, g % 500, 0 FROM generate_series(5001, 6000) g});
	@ids = event_ids('Recut');
	wait_all_accepted($t, \@ids, 180, 'recut: every event accepted after the re-cut');
	is(per_key_order_ok(accepted($t)), '', 'recut: per key, first arrivals in event order');
	is(sql(qq{SELECT string_agg(shard || ':' || generation, ' ' ORDER BY shard)
				FROM mfgsync.endpoint_state WHERE endpoint_id = $ep}),
		'0:1 1:1 2:1', 'recut: three shards of the next generation');
	ok(wait_until(sub {
				sql(q{SELECT pending = 0 AND delivered >= 21000 FROM mfgsync.endpoint_status
					   WHERE name = 'recut'}) eq 't' }, 30),
		'recut: nothing pending, every event counted');
	my %seen;
	my $dups = grep { $seen{ $_->{id} }++ } @{ accepted($t) };
	note("recut: $dups events delivered again after the re-cut");
	sql(q{SELECT mfgsync.drop_endpoint('recut')});
	stop_receiver($r);
}

# ---------------------------------------------------------------------
# 3. 410 pauses every shard; resume; replay
# ---------------------------------------------------------------------
{
	my $r = start_receiver('gone', '--status', '410');
	my $port = $r->{port};
	item_table('gone', 'Gone');
	my $ep = endpoint('gone', $r, 'Gone', '{"workers": 2}');
	sql(q{INSERT INTO gone SELECT g, g, 0 FROM generate_series(1, 100) g});
	my @ids = event_ids('Gone');
	ok(wait_until(sub {
				sql(q{SELECT paused AND paused_reason LIKE '%410%' FROM mfgsync.endpoint_status
					   WHERE name = 'gone'}) eq 't' }, 30),
		'gone: a 410 pauses the endpoint');
	# both shards hold their events once paused
	ok(wait_until(sub { sql(q{SELECT count(*) FROM mfgsync.retry}) == 100 }, 30),
		'gone: every event of both shards waits in mfgsync.retry');
	stop_receiver($r);

	my $r2 = start_receiver_on_port('gone2', $port);
	my $t = tail_new($r2);
	sql(q{SELECT mfgsync.resume_endpoint('gone')});
	wait_all_accepted($t, \@ids, 60, 'gone: every event accepted after resume');

	# replay ten events of each shard
	my @replay = split /\n/, sql(q{
		SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY
							mfgsync.shard_of(message_type || ' ' || coalesce(key::text, ''), 2)
							ORDER BY id) AS n
						  FROM mfgsync.outbox WHERE message_type = 'Gone') AS x
		 WHERE n <= 10 ORDER BY id});
	is(sql(q{SELECT mfgsync.replay('gone', ARRAY[} . join(',', @replay) . q{]::bigint[])}),
		'20', 'gone: 20 events replayed');
	ok(wait_until(sub {
				my %n;
				$n{ $_->{id} }++ for @{ accepted($t) };
				return !grep { ($n{$_} // 0) < 2 } @replay;
			}, 60),
		'gone: replayed events of both shards arrive again');
	sql(q{SELECT mfgsync.drop_endpoint('gone')});
	stop_receiver($r2);
}

# ---------------------------------------------------------------------
# 4. Crash (-m immediate) in the middle of a 50,000-event run, two shards
# ---------------------------------------------------------------------
{
	my $r = start_receiver('crash');
	item_table('crash', 'Crash');
	endpoint('crash', $r, 'Crash', '{"workers": 2}');
	my $t = tail_new($r);
	sql(q{INSERT INTO crash SELECT g, g % 1000, 0 FROM generate_series(1, 10000) g;
		  UPDATE crash SET v = 1;
		  UPDATE crash SET v = 2;
		  UPDATE crash SET v = 3;
		  UPDATE crash SET v = 4;});
	my @ids = event_ids('Crash');
	is(scalar @ids, 50000, 'crash: 50,000 events over 1,000 keys');
	ok(wait_until(sub { @{ tail_read($t) } > 5000 }, 60), 'crash: more than 5,000 requests arrived');
	$node->stop('immediate');
	my $at = @{ tail_read($t) };
	ok($at < 50000, "crash: in the middle of the run ($at requests)");
	$node->start;
	wait_all_accepted($t, \@ids, 180, 'crash: every event arrived at least once after the crash');
	my %want = map { $_ => 1 } @ids;
	is(scalar(grep { defined $_->{id} && !$want{ $_->{id} } } @{ tail_read($t) }), 0,
		'crash: no request for an event that was not captured');
	is(per_key_order_ok(accepted($t)), '', 'crash: per key, first arrivals in event order');
	isnt(per_key_order_ok([ reverse @{ accepted($t) } ]), '',
		'(the order check finds the requests reversed out of order)');
	my %seen;
	my $dups = grep { $seen{ $_->{id} }++ } @{ accepted($t) };
	note("crash: $dups events delivered again after the crash");
	stop_receiver($r);
}

my $bad = join '', grep { /PANIC:|TRAP:|terminated by signal 11/ }
  split /^/, slurp_file($node->logfile);
is($bad, '', 'no crash of a worker in the server log');

$node->stop;
done_testing();
