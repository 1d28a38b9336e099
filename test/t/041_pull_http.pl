# test/t/041_pull_http.pl - a pull job whose source is an mfgsync_http
# foreign table over the stand-in MES API (test/mes_api.py) on 127.0.0.1,
# changed while it runs through its admin interface: initial load, an
# incremental run with the watermark sent as a query parameter (checked in
# EXPLAIN and in the API's request log), a remote delete found by a full
# read, the chain remote change -> pull -> staging -> event -> webhook, and
# the API failing mid-run (HTTP 500 on the second page: nothing written,
# watermark kept, the next run succeeds).
use strict;
use warnings;
use File::Basename;
use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib dirname(__FILE__);
use MfgTest;

my $api_py = File::Spec->rel2abs(dirname(__FILE__) . '/../mes_api.py');

# the API: 250 generated orders, updated_at 2024-05-01 06:00:01 + n seconds
my $dir = PostgreSQL::Test::Utils::tempdir('api_pull');
my %api = (log => "$dir/requests.log", portfile => "$dir/port");
$api{handle} = IPC::Run::start(
	[ 'python3', $api_py, '--port', 0, '--port-file', $api{portfile},
	  '--log', $api{log}, '--orders', 250 ],
	'>', "$dir/out", '2>&1');
wait_until(sub { -s $api{portfile} }, 30, 'api') or die 'the MES API did not start';
$api{port} = slurp_file($api{portfile});
chomp $api{port};
$api{url} = "http://127.0.0.1:$api{port}";
END { local $?; eval { $api{handle}->kill_kill; }; }

# scans of the order resource logged since the last api_reset
sub api_scans
{
	return () unless -e $api{log};
	return grep { $_->{path} eq '/orders' }
	  map { decode_json($_) } grep { /\n\z/ } split /^/, slurp_file($api{log});
}
sub api_reset { unlink $api{log}; return; }

# admin(method, path, json body): change the API's data; returns the answer
sub admin
{
	my ($method, $path, $body) = @_;
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'curl', '-sS', '-f', '-X', $method, '-H', 'Content-Type: application/json',
			(defined $body ? ('--data-binary', $body) : ()), "$api{url}$path" ],
		'>', \$out, '2>', \$err)
	  or die "admin $method $path failed: $err";
	return decode_json($out);
}

my $node = mfg_cluster('pull_http');
my $receiver = start_receiver('pull_http');

sub sql { my ($q) = @_; return $node->safe_psql('postgres', $q); }

# run a statement that must fail; returns its stderr
sub sql_fails
{
	my ($query) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $query);
	return $rc != 0 ? $err : "unexpected success: $out";
}

# webhook bodies delivered (2xx) for an order, in arrival order
sub delivered
{
	my ($order) = @_;
	return grep { $_->{key}{order_code} eq $order }
	  map { decode_json($_->{body}) }
	  grep { ($_->{status} // 0) >= 200 && $_->{status} < 300 } receiver_log($receiver);
}

sql(qq{
CREATE SERVER mes FOREIGN DATA WRAPPER mfgsync_http
  OPTIONS (base_url '$api{url}', retry_delay '100');
CREATE FOREIGN TABLE mes_orders (
  order_code   text OPTIONS (param 'order_code'),
  product_code text,
  status       text,
  quantity     integer,
  start        timestamptz,
  "end"        timestamptz,
  machine_code text,
  updated_at   timestamptz OPTIONS (param_ge 'updated_since', param_gt 'updated_after')
) SERVER mes OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '100');
CREATE TABLE stg_order (
  order_code   text PRIMARY KEY,
  product_code text,
  status       text,
  quantity     integer,
  start        timestamptz,
  "end"        timestamptz,
  machine_code text,
  updated_at   timestamptz
);
SELECT mfgsync.track('stg_order', 'HttpOrder');
SELECT mfgsync.create_pull('http', 'mes_orders', 'stg_order',
                           watermark => 'updated_at', delete_missing => true);
SELECT mfgsync.create_endpoint('erp', '@{[ receiver_url($receiver) ]}');
SELECT mfgsync.subscribe('erp', '{HttpOrder}');
});

# ---------------------------------------------------------------------
# initial load: every page, no watermark parameter
# ---------------------------------------------------------------------
api_reset();
is(sql("SELECT * FROM mfgsync.run_pull('http')"), '250|250|0|0',
	'initial load reads and inserts 250 rows');
is(sql("SELECT count(*), sum(quantity), min(updated_at), max(updated_at) FROM stg_order"),
	'250|6375|2024-05-01 06:00:01+00|2024-05-01 06:04:10+00', 'staging holds them, values converted');
is(sql("SELECT count(*) FROM mfgsync.events WHERE message_type = 'HttpOrder' AND action = 'Add'"),
	'250', 'one Add event each');
my @scans = api_scans();
is(join(',', map { "$_->{params}{page}:$_->{rows}" } @scans), '1:100,2:100,3:50',
	'the first run read three pages');
is(scalar(grep { exists $_->{params}{updated_since} } @scans), 0,
	'without a watermark parameter');
like(sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'http'"),
	qr/^"2024-05-01T06:04:10/, 'the watermark is the highest updated_at read');

# ---------------------------------------------------------------------
# incremental: the watermark reaches the API as updated_since
# ---------------------------------------------------------------------
my $explain = sql("SELECT string_agg(e, E'\\n') FROM mfgsync.pull_explain('http') e");
like($explain,
	qr{Remote Request: GET \Q$api{url}\E/orders\?\S*updated_since=2024-05-01T06%3A04%3A10%2B00%3A00},
	'EXPLAIN: the watermark predicate is pushed down as a query parameter')
  or diag $explain;
like($explain, qr/Pushed Down: .*updated_at >= /, 'EXPLAIN: listed as pushed down')
  or diag $explain;

admin('POST', '/_admin/orders',
	'{"order_code": "PO-000007", "quantity": 1000, "updated_at": "2024-06-01T00:00:00Z"}');
api_reset();
is(sql("SELECT * FROM mfgsync.run_pull('http')"), '2|0|1|0',
	'an incremental run reads the boundary row and the changed one, updates one');
@scans = api_scans();
is(scalar(@scans), 1, 'one request');
is($scans[0]{params}{updated_since}, '2024-05-01T06:04:10+00:00',
	'the API received the watermark as updated_since');
is($scans[0]{rows}, 2, 'and answered 2 rows instead of 250');
is(sql("SELECT quantity FROM stg_order WHERE order_code = 'PO-000007'"), '1000',
	'the change arrived');
like(sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'http'"),
	qr/^"2024-06-01T00:00:00/, 'the watermark advanced');
is(sql(q{SELECT count(*) FROM mfgsync.events WHERE message_type = 'HttpOrder' AND action = 'Change'}),
	'1', 'one Change event: the boundary row re-read changed nothing');

# a new order: inserted by the next incremental run
admin('POST', '/_admin/orders', '{"order_code": "PO-900001", "product_code": "P-900",
	"status": "released", "quantity": 5, "updated_at": "2024-06-01T00:00:01Z"}');
is(sql("SELECT * FROM mfgsync.run_pull('http')"), '2|1|0|0', 'a new remote order is inserted');

# ---------------------------------------------------------------------
# delete detection: a full read with delete_missing
# ---------------------------------------------------------------------
admin('DELETE', '/_admin/orders/PO-000009');
api_reset();
is(sql("SELECT * FROM mfgsync.run_pull('http', full_read => true)"), '250|0|0|1',
	'a full read deletes the order gone from the API');
is(sql("SELECT count(*) FROM stg_order WHERE order_code = 'PO-000009'"), '0', 'it is gone');
@scans = api_scans();
is(join(',', map { $_->{params}{updated_since} // 'all' } @scans), 'all,all,all',
	'the full read asked for every row');

# ---------------------------------------------------------------------
# the chain: remote change -> pull -> staging -> event -> webhook
# ---------------------------------------------------------------------
admin('POST', '/_admin/orders',
	'{"order_code": "PO-000008", "quantity": 4242, "updated_at": "2024-06-02T00:00:00Z"}');
is(sql("SELECT rows_updated FROM mfgsync.run_pull('http')"), '1', 'the change is pulled');
ok(wait_until(sub { grep { $_->{action} eq 'Change' && $_->{data}{quantity} == 4242 } delivered('PO-000008') },
		60, 'change delivered'),
	'the remote change reached the webhook receiver');
ok(wait_until(sub { grep { $_->{action} eq 'Delete' } delivered('PO-000009') }, 60, 'delete delivered'),
	'so did the remote delete');
ok(wait_until(sub { grep { $_->{action} eq 'Add' } delivered('PO-900001') }, 60, 'add delivered'),
	'and the new order');

# ---------------------------------------------------------------------
# fault: the API answers 500 on the second page of a run
# ---------------------------------------------------------------------
admin('POST', '/_admin/orders',
	'{"order_code": "PO-000010", "quantity": -1, "updated_at": "2024-07-01T00:00:00Z"}');
admin('DELETE', '/_admin/orders/PO-000011');
my $state = q{SELECT md5(string_agg(s::text, ',' ORDER BY order_code)) FROM stg_order s};
my $before = sql($state);
my $wm = sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'http'");
my $events = sql("SELECT count(*) FROM mfgsync.outbox");
admin('POST', '/_admin/fault', '{"path": "/orders", "status": 500, "after": 1, "times": 1}');
api_reset();
like(sql_fails("SELECT * FROM mfgsync.run_pull('http', full_read => true)"),
	qr/server "mes" answered HTTP 500/, 'a run fails when the API answers 500 mid-run');
is(join(',', map { "$_->{status}:" . ($_->{rows} // '-') } api_scans()), '200:100,500:-',
	'the first page was read, the second failed');
is(sql($state), $before, 'staging unchanged');
is(sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'http'"), $wm,
	'watermark not advanced');
is(sql("SELECT count(*) FROM mfgsync.outbox"), $events, 'no event captured');
is(sql("SELECT count(*) FROM mfgsync.pull_runs WHERE status = 'running'"), '0',
	'the failed run left no run row behind');
is(sql("SELECT * FROM mfgsync.run_pull('http', full_read => true)"), '249|0|1|1',
	'the next run succeeds and picks up the change and the delete');
is(sql("SELECT quantity FROM stg_order WHERE order_code = 'PO-000010'"), '-1', 'the change arrived');
like(sql("SELECT last_watermark FROM mfgsync.pull_jobs WHERE name = 'http'"),
	qr/^"2024-07-01T00:00:00/, 'the watermark advanced');

done_testing();
