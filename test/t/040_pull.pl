# Pull jobs against real remote databases: a MariaDB server (through
# mysql_fdw, with a read-only account) and a second PostgreSQL cluster
# (through postgres_fdw, with a read-only role).  For each: initial load,
# incremental change with the watermark pushed to the remote side, delete
# detection, and the whole chain to a webhook receiver.  Faults: the remote
# stops mid-run, schema drift.  Scheduling: a job with `every` runs by
# itself, a failing job does not stop another, runs of one job never
# overlap, failures back off.
use strict;
use warnings;
use FindBin;
use IPC::Run;
use lib $FindBin::RealBin;
use JSON::PP;
use MfgMaria;
use MfgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = mfg_cluster('pull', qq{
max_worker_processes = 16
mfgsync.max_pull_workers = 3
});

sub sql
{
	my ($query) = @_;
	return $node->safe_psql('postgres', $query);
}

# run a statement that must fail; returns its stderr
sub sql_fails
{
	my ($query) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $query);
	return $rc != 0 ? $err : "unexpected success: $out";
}

my $receiver = start_receiver('pull');
sql(q{CREATE EXTENSION mysql_fdw; CREATE EXTENSION postgres_fdw;});

# the body of the webhooks delivered for an order, in arrival order
sub delivered
{
	my ($type, $order) = @_;
	my @events;
	for my $req (receiver_log($receiver))
	{
		next unless ($req->{status} // 0) >= 200 && $req->{status} < 300;
		my $e = decode_json($req->{body});
		push @events, $e
		  if $e->{message_type} eq $type && $e->{key}{order_code} eq $order;
	}
	return @events;
}

# ---------------------------------------------------------------------
# The remote databases
# ---------------------------------------------------------------------
my $maria = maria_new('mes');
maria_start($maria);
maria_sql($maria, q{
	CREATE DATABASE mes;
	USE mes;
	CREATE TABLE mes.orders (order_code varchar(20) PRIMARY KEY, product_code varchar(20),
	                         qty int, changed_at datetime(6) NOT NULL);
	CREATE USER 'reader'@'127.0.0.1' IDENTIFIED BY 'read-only-pw';
	GRANT SELECT ON mes.* TO 'reader'@'127.0.0.1';
	INSERT INTO mes.orders
	  SELECT concat('M', seq), concat('P', seq % 7), seq, '2024-01-01 00:00:00' + INTERVAL seq MINUTE
	    FROM seq_1_to_100;
});

my $remote = PostgreSQL::Test::Cluster->new('mes_pg');
$remote->init;
$remote->start;
$remote->safe_psql('postgres', q{
	CREATE DATABASE mes;
});
$remote->safe_psql('mes', q{
	CREATE TABLE orders (order_code text PRIMARY KEY, product_code text, qty int,
	                     changed_at timestamptz NOT NULL);
	INSERT INTO orders
	  SELECT 'G' || g, 'P' || g % 7, g, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute'
	    FROM generate_series(1, 100) g;
	-- a gate: reading order G50 waits while the test holds advisory lock 42
	CREATE FUNCTION gate(code text) RETURNS text LANGUAGE plpgsql AS $$
	BEGIN
	    IF code = 'G50' THEN
	        PERFORM pg_advisory_lock_shared(42);
	        PERFORM pg_advisory_unlock_shared(42);
	    END IF;
	    RETURN code;
	END $$;
	CREATE VIEW orders_gated AS
	  SELECT gate(order_code) AS order_code, product_code, qty, changed_at FROM orders;
	CREATE ROLE reader LOGIN;
	ALTER ROLE reader SET default_transaction_read_only = on;
	GRANT SELECT ON orders, orders_gated TO reader;
});

sql(sprintf(q{
	CREATE SERVER maria FOREIGN DATA WRAPPER mysql_fdw
	  OPTIONS (host '127.0.0.1', port '%d');
	CREATE USER MAPPING FOR CURRENT_USER SERVER maria
	  OPTIONS (username 'reader', password 'read-only-pw');
	CREATE FOREIGN TABLE maria_orders (order_code text, product_code text, qty int,
	                                   changed_at timestamp)
	  SERVER maria OPTIONS (dbname 'mes', table_name 'orders');
	CREATE SERVER mes_pg FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '%s', port '%d', dbname 'mes', fetch_size '10');
	CREATE USER MAPPING FOR CURRENT_USER SERVER mes_pg OPTIONS (user 'reader');
	CREATE FOREIGN TABLE pg_orders (order_code text, product_code text, qty int,
	                                changed_at timestamptz)
	  SERVER mes_pg OPTIONS (table_name 'orders');
	CREATE FOREIGN TABLE pg_orders_gated (order_code text, product_code text, qty int,
	                                      changed_at timestamptz)
	  SERVER mes_pg OPTIONS (table_name 'orders_gated');
	CREATE TABLE stg_maria (order_code text PRIMARY KEY, product_code text, qty int,
	                        changed_at timestamp);
	CREATE TABLE stg_pg (order_code text PRIMARY KEY, product_code text, qty int,
	                     changed_at timestamptz);
	SELECT mfgsync.track('stg_maria', 'MariaOrder');
	SELECT mfgsync.track('stg_pg', 'PgOrder');
	SELECT mfgsync.create_pull('maria', 'maria_orders', 'stg_maria',
	                           watermark => 'changed_at', delete_missing => true);
	SELECT mfgsync.create_pull('pg', 'pg_orders', 'stg_pg',
	                           watermark => 'changed_at', delete_missing => true);
}, $maria->{port}, $remote->host, $remote->port));
sql(sprintf(q{SELECT mfgsync.create_endpoint('erp', '%s');
	SELECT mfgsync.subscribe('erp', '{MariaOrder,PgOrder}');},
	receiver_url($receiver)));

# remote_sql(source, sql): change the remote database
sub remote_sql
{
	my ($src, $q) = @_;
	return $src eq 'maria' ? maria_sql($maria, $q) : $remote->safe_psql('mes', $q);
}

my %remote_table = (maria => 'mes.orders', pg => 'orders');
my %prefix = (maria => 'M', pg => 'G');
my %type = (maria => 'MariaOrder', pg => 'PgOrder');

for my $src ('maria', 'pg')
{
	my $p = $prefix{$src};
	my $stg = "stg_$src";

	# initial load
	is(sql("SELECT * FROM mfgsync.run_pull('$src')"), '100|100|0|0',
		"$src: initial load reads and inserts 100 rows");
	is(sql("SELECT count(*), sum(qty) FROM $stg"), '100|5050', "$src: staging holds them");
	is(sql("SELECT count(*) FROM mfgsync.events WHERE message_type = '$type{$src}'"),
		'100', "$src: one Add event each");

	# incremental: the watermark predicate reaches the remote side
	my $explain = sql("SELECT string_agg(e, E'\\n') FROM mfgsync.pull_explain('$src') e");
	like($explain,
		$src eq 'maria'
		? qr/Remote query: SELECT .* FROM `mes`.`orders` WHERE \(\(`changed_at` >= '2024-01-01 01:40:00'\)\)/
		: qr/Remote SQL: SELECT .* FROM public.orders WHERE \(\(changed_at >= '2024-01-01 \d\d:40:00[^']*'(::timestamp with time zone)?\)\)/,
		"$src: the watermark predicate is sent to the remote database")
	  or diag $explain;
	remote_sql($src, "UPDATE $remote_table{$src} SET qty = 1000, changed_at = '2024-02-01 00:00:00' WHERE order_code = '${p}7'");
	is(sql("SELECT * FROM mfgsync.run_pull('$src')"), '2|0|1|0',
		"$src: an incremental run reads the boundary row and the changed one, updates one");
	is(sql("SELECT qty FROM $stg WHERE order_code = '${p}7'"), '1000', "$src: the change arrived");
	like(sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = '$src'"),
		qr/^"2024-02-01T00:00:00/, "$src: the watermark advanced");

	# delete detection on a full read
	remote_sql($src, "DELETE FROM $remote_table{$src} WHERE order_code = '${p}9'");
	is(sql("SELECT * FROM mfgsync.run_pull('$src', full_read => true)"), '99|0|0|1',
		"$src: a full read deletes the row gone from the remote table");
	is(sql("SELECT count(*) FROM $stg WHERE order_code = '${p}9'"), '0', "$src: it is gone");

	# the whole chain: remote change -> pull -> staging -> event -> webhook
	remote_sql($src, "UPDATE $remote_table{$src} SET qty = 4242, changed_at = '2024-02-02 00:00:00' WHERE order_code = '${p}8'");
	sql("SELECT mfgsync.run_pull('$src')");
	ok(wait_until(sub { grep { $_->{action} eq 'Change' && $_->{data}{qty} == 4242 } delivered($type{$src}, "${p}8") },
			60, "$src change delivered"),
		"$src: the remote change reached the webhook receiver");
	ok(wait_until(sub { grep { $_->{action} eq 'Delete' } delivered($type{$src}, "${p}9") }, 60, 'delete'),
		"$src: so did the delete");
}

# nothing was ever written on the remote side by the pulls: the accounts
# are read-only (MariaDB: SELECT only; PostgreSQL: read-only transactions)
is(maria_sql($maria, q{SHOW GRANTS FOR 'reader'@'127.0.0.1'}) =~ /GRANT SELECT ON `mes`/ ? 1 : 0,
	1, 'maria: the account can only SELECT');
is($remote->safe_psql('mes', q{SELECT setting FROM pg_db_role_setting, unnest(setconfig) setting
	WHERE setrole = 'reader'::regrole}), 'default_transaction_read_only=on',
	'pg: the role only runs read-only transactions');

# ---------------------------------------------------------------------
# Faults: the remote stops mid-run
# ---------------------------------------------------------------------
sql(q{CREATE TABLE stg_gated (LIKE stg_pg INCLUDING ALL);
	SELECT mfgsync.create_pull('gated', 'pg_orders_gated', 'stg_gated', watermark => 'changed_at');});
is(sql("SELECT rows_read FROM mfgsync.run_pull('gated')"), '99', 'gated: initial load');
my $wm = sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'gated'");
$remote->safe_psql('mes', q{UPDATE orders SET qty = -1, changed_at = '2024-03-01' WHERE order_code IN ('G1', 'G50')});

# the test holds the gate; the run reads G1, then waits at G50
my ($gate_in, $gate_out) = ('', '');
my $gate = IPC::Run::start([ 'psql', '-X', '-q', '-d', $remote->connstr('mes') ],
	'<', \$gate_in, '>', \$gate_out, '2>&1');
$gate_in .= "SELECT pg_advisory_lock(42);\n\\echo locked\n";
$gate->pump until $gate_out =~ /locked/;
my ($run_out, $run_err) = ('', '');
my $run = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'),
	  '-c', "SELECT * FROM mfgsync.run_pull('gated', full_read => true)" ],
	'>', \$run_out, '2>', \$run_err);
ok(wait_until(sub {
		$remote->safe_psql('mes', q{SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted}) eq '1' }, 60, 'run waits at the gate'),
	'gated: the run is reading from the remote database');
$remote->stop('immediate');
$run->finish;
like($run_err, qr/server closed the connection|terminat|could not receive data|connection/i,
	'gated: the run fails when the remote database stops mid-run');
is(sql("SELECT count(*) FROM stg_gated WHERE qty = -1"), '0', 'gated: staging unchanged');
is(sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'gated'"), $wm,
	'gated: watermark not advanced');
eval { $gate->kill_kill };
$remote->start;
is(sql("SELECT rows_read, rows_updated FROM mfgsync.run_pull('gated')"), '3|2',
	'gated: the next run succeeds and picks the changes up');

# MariaDB goes away between runs and mid-run (killed)
maria_sql($maria, q{UPDATE mes.orders SET qty = -2, changed_at = '2024-03-01' WHERE order_code = 'M1'});
my $mwm = sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'maria'");
maria_kill($maria);
like(sql_fails("SELECT * FROM mfgsync.run_pull('maria')"),
	qr/failed to connect to MySQL|Can't connect|Lost connection/i,
	'maria: a run against a stopped MariaDB fails cleanly');
is(sql("SELECT qty FROM stg_maria WHERE order_code = 'M1'"), '1', 'maria: staging unchanged');
is(sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'maria'"), $mwm,
	'maria: watermark not advanced');
maria_start($maria);
is(sql("SELECT rows_updated FROM mfgsync.run_pull('maria')"), '1',
	'maria: the next run succeeds');

# schema drift on the remote side: a clear error, nothing written
maria_sql($maria, q{ALTER TABLE mes.orders CHANGE qty quantity int});
like(sql_fails("SELECT * FROM mfgsync.run_pull('maria')"), qr/Unknown column .qty./,
	'maria: a renamed remote column is a clear error');
maria_sql($maria, q{ALTER TABLE mes.orders CHANGE quantity qty int});
$remote->safe_psql('mes', q{ALTER TABLE orders RENAME COLUMN qty TO quantity});
like(sql_fails("SELECT * FROM mfgsync.run_pull('pg')"), qr/column "qty" does not exist/,
	'pg: a renamed remote column is a clear error');
$remote->safe_psql('mes', q{ALTER TABLE orders RENAME COLUMN quantity TO qty});
is(sql("SELECT count(*) FROM mfgsync.pull_runs WHERE status = 'running'"), '0',
	'failed manual runs leave no run rows behind');

# ---------------------------------------------------------------------
# Scheduling by the background worker
# ---------------------------------------------------------------------
$remote->safe_psql('mes', q{CREATE TABLE tick (id int PRIMARY KEY, v int);
	INSERT INTO tick VALUES (1, 0); GRANT SELECT ON tick TO reader;});
sql(q{
	CREATE FOREIGN TABLE pg_tick (id int, v int) SERVER mes_pg OPTIONS (table_name 'tick');
	CREATE FOREIGN TABLE pg_missing (id int, v int) SERVER mes_pg OPTIONS (table_name 'no_such_table');
	CREATE TABLE stg_tick (id int PRIMARY KEY, v int);
	CREATE TABLE stg_missing (id int PRIMARY KEY, v int);
	SELECT mfgsync.create_pull('bad', 'pg_missing', 'stg_missing', every => '1 second');
	SELECT mfgsync.create_pull('tick', 'pg_tick', 'stg_tick', every => '1 second');
});
ok(wait_until(sub { sql("SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'tick' AND trigger = 'schedule' AND status = 'succeeded'") >= 2 },
		60, 'tick runs'),
	'a job with every runs by itself, repeatedly');
$remote->safe_psql('mes', q{UPDATE tick SET v = 7});
ok(wait_until(sub { sql("SELECT v FROM stg_tick") eq '7' }, 60, 'tick change'),
	'a scheduled run brings a remote change in');
ok(wait_until(sub { sql("SELECT failures FROM mfgsync.pull_jobs WHERE name = 'bad'") >= 3 }, 60, 'bad fails'),
	'the failing job keeps failing (and the other one keeps running)');
like(sql("SELECT error FROM mfgsync.pull_runs WHERE job = 'bad' ORDER BY id DESC LIMIT 1"),
	qr/relation "public.no_such_table" does not exist/, 'its runs record the remote error');
is(sql(q{SELECT bool_and(r.finished_at IS NOT NULL AND r.error IS NOT NULL)
	FROM mfgsync.pull_runs r WHERE job = 'bad' AND status = 'failed'}), 't',
	'failed scheduled runs are logged with their end and error');
# back-off: after n failures the next run waits every * 2^(n-1)
is(sql(q{SELECT j.next_run_at - r.finished_at >= interval '1 second' * power(2, j.failures - 1) - interval '100 ms'
	FROM mfgsync.pull_jobs j, LATERAL (SELECT finished_at FROM mfgsync.pull_runs
	  WHERE job = j.name ORDER BY id DESC LIMIT 1) r WHERE j.name = 'bad'}), 't',
	'repeated failures back off');
my $ok_runs = sql("SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'tick' AND status = 'succeeded'");
ok(wait_until(sub { sql("SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'tick' AND status = 'succeeded'") >= $ok_runs + 2 }, 60, 'tick'),
	'the healthy job keeps running beside the failing one');
sql("SELECT mfgsync.drop_pull('bad')");

# no overlap: a scheduled run blocked at the gate is not joined by another
$gate_in = $gate_out = '';
$gate = IPC::Run::start([ 'psql', '-X', '-q', '-d', $remote->connstr('mes') ],
	'<', \$gate_in, '>', \$gate_out, '2>&1');
$gate_in .= "SELECT pg_advisory_lock(42);\n\\echo locked\n";
$gate->pump until $gate_out =~ /locked/;
sql(q{SELECT mfgsync.alter_pull('gated', '{"every": "1 second"}')});
ok(wait_until(sub { sql("SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'gated' AND status = 'running'") eq '1' }, 60, 'gated running'),
	'the scheduled run of the gated job is running');
ok(wait_until(sub {
		$remote->safe_psql('mes', q{SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted}) eq '1' }, 60, 'at the gate'),
	'and waiting at the gate');
# let several schedule periods pass, measured by the other job's runs
$ok_runs = sql("SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'tick' AND status = 'succeeded'");
ok(wait_until(sub { sql("SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'tick' AND status = 'succeeded'") >= $ok_runs + 3 }, 60, 'periods'),
	'three periods pass');
is(sql("SELECT count(*) FROM mfgsync.pull_runs WHERE job = 'gated' AND trigger = 'schedule'"), '1',
	'no second scheduled run of the job started meanwhile');
is(sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'mfgsync pull' AND application_name = 'mfgsync pull ' || (SELECT id FROM mfgsync.pull_job WHERE name = 'gated')"),
	'1', 'one worker for the job');
like(sql_fails("SELECT * FROM mfgsync.run_pull('gated')"), qr/pull job "gated" is already running/,
	'a manual run does not overlap it either');
$gate_in .= "SELECT pg_advisory_unlock(42);\n\\q\n";
$gate->finish;
ok(wait_until(sub { sql("SELECT status FROM mfgsync.pull_runs WHERE job = 'gated' AND trigger = 'schedule' ORDER BY id LIMIT 1") eq 'succeeded' }, 60, 'gated done'),
	'released, the scheduled run completes');

# dropping a job stops its schedule
sql(q{SELECT mfgsync.drop_pull('tick'); SELECT mfgsync.drop_pull('gated');});

$remote->stop;
maria_stop($maria);
done_testing();
