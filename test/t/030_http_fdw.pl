# test/t/030_http_fdw.pl - the mfgsync_http foreign-data wrapper against the
# stand-in MES API (test/mes_api.py) on 127.0.0.1: every pagination style,
# pushdown (checked in the API's request log), EXPLAIN, faults, auth modes,
# OAuth2 token caching and refresh, rate limit across two sessions, daily
# budget across a restart, cancel and statement_timeout, IMPORT FOREIGN
# SCHEMA.
use strict;
use warnings;
use File::Basename;
use File::Spec;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use lib dirname(__FILE__);
use MfgTest;

my $api_py = File::Spec->rel2abs(dirname(__FILE__) . '/../mes_api.py');
my @apis;

# start_api(name, args...): test/mes_api.py; returns {port, log, url}
sub start_api
{
	my ($name, @args) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("api_$name");
	my %a = (log => "$dir/requests.log", portfile => "$dir/port");
	$a{handle} = IPC::Run::start(
		[ 'python3', $api_py, '--port', 0, '--port-file', $a{portfile},
		  '--log', $a{log}, @args ],
		'>', "$dir/out", '2>&1');
	wait_until(sub { -s $a{portfile} }, 30, "api $name") or die "api $name did not start";
	$a{port} = slurp_file($a{portfile});
	chomp $a{port};
	$a{url} = "http://127.0.0.1:$a{port}";
	push @apis, \%a;
	return \%a;
}

END { local $?; for my $a (@apis) { eval { $a->{handle}->kill_kill; }; } }

# api_log(api): the requests so far (hashes); api_reset(api): forget them
sub api_log
{
	my ($a) = @_;
	return () unless -e $a->{log};
	return map { decode_json($_) } grep { /\n\z/ } split /^/, slurp_file($a->{log});
}
sub api_reset { my ($a) = @_; unlink $a->{log}; return; }

my $node = mfg_cluster('fdw');
my $api = start_api('plain', '--orders', '250');

$node->safe_psql('postgres', qq{
CREATE SERVER mes FOREIGN DATA WRAPPER mfgsync_http
  OPTIONS (base_url '$api->{url}', retry_delay '100');
CREATE FOREIGN TABLE orders (
  order_code text OPTIONS (param 'order_code'),
  product_code text,
  status text OPTIONS (param 'status'),
  quantity integer,
  start timestamptz,
  "end" timestamptz,
  machine_code text,
  updated_at timestamptz OPTIONS (param_ge 'updated_since', param_gt 'updated_after',
                                  param_lt 'updated_before', param_le 'updated_until'),
  urgent boolean,
  first_machine text OPTIONS (path 'ops[0].machine'),
  row_doc jsonb OPTIONS (path '\$')
) SERVER mes OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '100');
CREATE FOREIGN TABLE orders_offset (order_code text) SERVER mes
  OPTIONS (path '/orders', rows 'data', pagination 'offset', page_size '33');
CREATE FOREIGN TABLE orders_cursor (order_code text, quantity numeric) SERVER mes
  OPTIONS (path '/cursor/orders', rows 'items', pagination 'cursor',
           cursor_path 'meta.next_cursor', page_size '40', page_size_param 'limit');
CREATE FOREIGN TABLE orders_next (order_code text) SERVER mes
  OPTIONS (path '/next/orders', rows 'results', pagination 'next_url',
           next_url_path 'next', page_size '40', page_size_param 'limit');
CREATE FOREIGN TABLE orders_link (order_code text) SERVER mes
  OPTIONS (path '/link/orders', pagination 'link', page_size '40', page_size_param 'per_page');
CREATE FOREIGN TABLE orders_plain (order_code text, quantity integer) SERVER mes
  OPTIONS (path '/plain/orders');
CREATE FOREIGN TABLE bookings (booking_id integer, order_code text OPTIONS (param 'order_code'),
  event text, at timestamptz, quantity integer) SERVER mes
  OPTIONS (path '/bookings', rows 'data', pagination 'page', page_size '100');
});

# --- scans: every pagination style returns every row once
my $expect = '250|250|PO-000001|PO-000250|6375';
for my $t (qw(orders orders_offset orders_cursor orders_next orders_link orders_plain))
{
	my $extra = $t =~ /cursor|plain|^orders$/ ? 'sum(quantity)' : '6375';
	is($node->safe_psql('postgres',
			"SELECT count(*), count(DISTINCT order_code), min(order_code), max(order_code), $extra FROM $t"),
		$expect, "$t: all rows, each once");
}
is($node->safe_psql('postgres', q{
SELECT order_code, status, quantity, start, "end", urgent, first_machine, row_doc->>'machine_code', row_doc->'ops'->0->>'step'
  FROM orders WHERE order_code = 'PO-000007'}),
	'PO-000007|planned|8|2024-05-01 06:07:00+00|2024-05-01 07:37:00+00|t|M-07|M-07|10',
	'values converted by type, nested path, whole-row jsonb');

# --- pushdown: the API receives the parameters
api_reset($api);
is($node->safe_psql('postgres', q{
SELECT count(*) FROM orders WHERE status IN ('started', 'planned')
   AND updated_at >= '2024-05-01 06:01:00+00' AND updated_at < '2024-05-01 06:02:00+00'}),
	'30', 'IN and range quals: right rows');
my @log = api_log($api);
is(scalar(@log), 1, 'one request for a filtered scan');
is_deeply($log[0]{params},
	{ status => 'started,planned', updated_since => '2024-05-01T06:01:00+00:00',
	  updated_before => '2024-05-01T06:02:00+00:00', page => '1', page_size => '100' },
	'API received IN list and range parameters');

api_reset($api);
is($node->safe_psql('postgres', q{
PREPARE q(text) AS SELECT count(*) FROM orders WHERE status = $1 AND quantity > 40;
EXECUTE q('completed')}), '12', 'parameter of a prepared statement; a local qual');
@log = api_log($api);
is($log[0]{params}{status}, 'completed', 'prepared statement parameter pushed down');

api_reset($api);
is($node->safe_psql('postgres', q{SELECT string_agg(order_code, ',') FROM (SELECT order_code FROM orders WHERE status = 'started' LIMIT 3) s}),
	'PO-000001,PO-000005,PO-000009', 'LIMIT result');
@log = api_log($api);
is(scalar(@log), 1, 'LIMIT: one request');
is($log[0]{params}{page_size}, '3', 'LIMIT shrinks the page size when every qual is pushed');

api_reset($api);
$node->safe_psql('postgres', q{SELECT * FROM orders WHERE quantity = 7 LIMIT 3});
@log = api_log($api);
is($log[0]{params}{page_size}, '100', 'LIMIT with a local qual keeps full pages');

api_reset($api);
is($node->safe_psql('postgres', q{
SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off;
SELECT string_agg(b.order_code || ':' || b.event, ',' ORDER BY b.booking_id)
  FROM (VALUES ('PO-000003'), ('PO-000042')) v(code) JOIN bookings b ON b.order_code = v.code}),
	'PO-000003:START,PO-000003:END,PO-000042:START,PO-000042:END', 'join result');
@log = api_log($api);
is_deeply([ sort map { $_->{params}{order_code} // 'none' } @log ], [ 'PO-000003', 'PO-000042' ],
	'parameterized path: one request per outer row, with its value');

# --- EXPLAIN
my $plan = $node->safe_psql('postgres', q{
EXPLAIN (VERBOSE, COSTS OFF) SELECT order_code FROM orders WHERE status = 'started' AND updated_at > '2024-05-01 06:00:10+00'});
like($plan, qr{Remote Request: GET \Q$api->{url}\E/orders\?\S*updated_after=2024-05-01T06%3A00%3A10%2B00%3A00&\S*page=1&page_size=100},
	'EXPLAIN VERBOSE shows the remote request');
like($plan, qr{Remote Request: GET \S+[?&]status=started&}, 'EXPLAIN VERBOSE: both parameters in the request');
like($plan, qr/Pushed Down: .*status = 'started'::text/, 'EXPLAIN VERBOSE shows what was pushed');
like($plan, qr/Pushed Down: .*updated_at > '2024-05-01 06:00:10\+00'/, 'EXPLAIN VERBOSE shows the range qual pushed');
$plan = $node->safe_psql('postgres', q{
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM orders});
like($plan, qr/Pages Fetched: 3\n.*Requests: 3\n.*Bytes Received: \d{5,} bytes/s, 'EXPLAIN ANALYZE: pages, requests and bytes');

# --- faults
sub fault_table
{
	my ($name, $params, @opts) = @_;
	my $o = join('', map { ", $_" } @opts);
	$node->safe_psql('postgres', qq{
CREATE FOREIGN TABLE $name (order_code text, quantity integer) SERVER mes
  OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '100', params '$params' $o)});
	return;
}
sub fails_like
{
	my ($sql, $re, $name) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', $sql);
	isnt($rc, 0, "$name: fails");
	like($err, $re, "$name: message");
	return $err;
}

fault_table('f429', 'fault=429&fault_times=2&retry_after=1');
api_reset($api);
my $t0 = time();
is($node->safe_psql('postgres', 'SELECT count(*) FROM f429'), '250', '429: retried, then all rows');
my @statuses = map { $_->{status} } api_log($api);
is("@statuses", '429 429 200 200 200', '429 twice, then the pages');
cmp_ok(time() - $t0, '>=', 1.9, 'Retry-After honoured (1 s twice)');

fault_table('f503', 'fault=503&fault_times=9&retry_after=0');
fails_like('SELECT count(*) FROM f503', qr/answered HTTP 503.*retried 3 times/s, '503 beyond the retries');
fault_table('f500', 'fault=500');
my $err = fails_like('SELECT count(*) FROM f500',
	qr/server "mes" answered HTTP 500\nDETAIL:  Response body: \{"error": "internal error", "detail": "x+\.\.\.\nCONTEXT:  remote request: GET http:.*fault=500/,
	'500');
cmp_ok(length($err), '<', 800, '500: body truncated');
fault_table('fmal', 'fault=malformed');
fails_like('SELECT count(*) FROM fmal', qr/malformed JSON from server "mes" at byte offset \d+/, 'malformed JSON');
fault_table('ftrunc', 'fault=truncated');
fails_like('SELECT count(*) FROM ftrunc', qr/(ended before the JSON document|could not read from server)/, 'truncated answer');
fault_table('ftypes', 'fault=wrong_types');
fails_like('SELECT sum(quantity) FROM ftypes',
	qr/invalid input syntax for type integer: "ten"\nCONTEXT:  column "quantity" of row 2 from server "mes", value "ten"/,
	'wrong type: column, row and value named');
fault_table('fhuge', 'fault=huge', "max_page_bytes '20000'");
fails_like('SELECT count(*) FROM fhuge', qr/larger than max_page_bytes/, 'page larger than max_page_bytes');
$node->safe_psql('postgres', q{CREATE FOREIGN TABLE fhuge_ok (order_code text) SERVER mes
  OPTIONS (path '/orders', rows 'data', params 'fault=huge')});
is($node->safe_psql('postgres', 'SELECT count(*) FROM fhuge_ok'), '250', 'a huge page is streamed');
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE floop (order_code text) SERVER mes
  OPTIONS (path '/cursor/orders', rows 'items', pagination 'cursor', cursor_path 'meta.next_cursor',
           page_size '10', page_size_param 'limit', params 'fault=cursor_loop');
CREATE FOREIGN TABLE fforeign (order_code text) SERVER mes
  OPTIONS (path '/next/orders', rows 'results', pagination 'next_url', next_url_path 'next',
           page_size '10', page_size_param 'limit', params 'fault=foreign_next');
CREATE FOREIGN TABLE fcap (order_code text) SERVER mes
  OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '10', max_pages '3');
CREATE FOREIGN TABLE frows (order_code text) SERVER mes OPTIONS (path '/orders', rows 'items');
});
fails_like('SELECT count(*) FROM floop', qr/returned the cursor of an earlier page again/, 'endless cursor loop');
fails_like('SELECT count(*) FROM fforeign', qr/named a next page on another host/, 'next link to another host');
fails_like('SELECT count(*) FROM fcap', qr/reached max_pages \(3\) with more pages/, 'page cap');
fails_like('SELECT count(*) FROM frows', qr/has no row array at "items"/, 'row path absent');

# --- auth modes
my %creds = (
	api_key_header => "api_key 'k-secret'",
	api_key_param => "api_key 'k-secret', api_key_param 'api_key'",
	bearer => "bearer_token 'b-secret'",
	basic => "username 'mes', password 'p-secret'",
	oauth2 => "token_url 'TOKEN', client_id 'cid', client_secret 'c-secret', scope 'orders'");
for my $mode (sort keys %creds)
{
	my $a = start_api($mode, '--orders', '30', '--auth', $mode);
	(my $c = $creds{$mode}) =~ s{TOKEN}{$a->{url}/oauth/token};
	$node->safe_psql('postgres', qq{
CREATE SERVER s_$mode FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url '$a->{url}');
CREATE FOREIGN TABLE o_$mode (order_code text) SERVER s_$mode
  OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '20');});
	$err = fails_like("SELECT count(*) FROM o_$mode", qr/answered HTTP 401/, "$mode: no user mapping");
	$node->safe_psql('postgres', "CREATE USER MAPPING FOR CURRENT_USER SERVER s_$mode OPTIONS ($c)");
	is($node->safe_psql('postgres', "SELECT count(*) FROM o_$mode"), '30', "$mode: authenticated scan");
	is(scalar(grep { $_->{auth} ne 'ok' && $_->{path} eq '/orders' } api_log($a)), 1, "$mode: only the first request was refused");
	$plan = $node->safe_psql('postgres', "EXPLAIN (VERBOSE) SELECT * FROM o_$mode");
	unlike($plan, qr/secret/, "$mode: EXPLAIN shows no secret");
	$a->{name} = $mode;
	$creds{$mode} = $a;
}
like($node->safe_psql('postgres', 'EXPLAIN (VERBOSE) SELECT * FROM o_api_key_param'),
	qr/page_size=20&api_key=\*\*\*/, 'API key parameter redacted in EXPLAIN');
$node->safe_psql('postgres', q{ALTER USER MAPPING FOR CURRENT_USER SERVER s_api_key_param OPTIONS (SET api_key 'wrong-key')});
$err = fails_like('SELECT count(*) FROM o_api_key_param', qr/answered HTTP 401.*api_key=\*\*\*/s, 'wrong key: redacted request');
unlike($err, qr/wrong-key/, 'wrong key: secret not in the message');
# the test cluster logs every statement (log_statement = all); apart from
# the statements that set them, no log line may hold a secret
my @leaks = grep { /k-secret|b-secret|p-secret|c-secret|wrong-key/ && !/LOG:  statement: / }
  split /\n/, slurp_file($node->logfile);
is(scalar(@leaks), 0, 'no secret in the server log') or diag(join("\n", @leaks));

# --- OAuth2: one token per session for many scans, a new one after a 401
# (the cache lives in the backend; the revocation happens mid-session)
my $oa = $creds{oauth2};
my $tokens0 = decode_json(`curl -s $oa->{url}/_admin/stats`)->{tokens};
api_reset($oa);
is($node->safe_psql('postgres', 'SELECT count(*) FROM o_oauth2; SELECT count(*) FROM o_oauth2; SELECT count(*) FROM o_oauth2'),
	"30\n30\n30", 'OAuth2: three scans');
is(decode_json(`curl -s $oa->{url}/_admin/stats`)->{tokens} - $tokens0, 1, 'OAuth2: one token for three scans in one session');
is(scalar(grep { $_->{path} eq '/oauth/token' } api_log($oa)), 1, 'OAuth2: one token request logged');
api_reset($oa);
is($node->safe_psql('postgres', qq{SELECT count(*) FROM o_oauth2;
COPY (SELECT 1) TO PROGRAM 'curl -s -X POST $oa->{url}/_admin/revoke';
SELECT count(*) FROM o_oauth2;}), "30\n30", 'OAuth2: scan after the token was revoked mid-session');
is(join(' ', map { "$_->{path}:$_->{status}" } grep { $_->{path} ne '/_admin/stats' } api_log($oa)),
	'/oauth/token:200 /orders:200 /orders:200 /_admin/revoke:200 /orders:401 /oauth/token:200 /orders:200 /orders:200',
	'OAuth2: 401, one new token, the request made again');
# Infor ION-style credential set: password grant with the service account keys
$node->safe_psql('postgres', qq{
CREATE SERVER s_ion FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url '$oa->{url}');
CREATE USER MAPPING FOR CURRENT_USER SERVER s_ion OPTIONS (token_url '$oa->{url}/oauth/token',
  client_id 'cid', client_secret 'c-secret', client_auth 'body', oauth2_grant 'password',
  username 'mes', password 'p-secret');
CREATE FOREIGN TABLE o_ion (order_code text) SERVER s_ion OPTIONS (path '/orders', rows 'data');});
is($node->safe_psql('postgres', 'SELECT count(*) FROM o_ion'), '30', 'OAuth2 password grant (ION .ionapi)');
$node->safe_psql('postgres', qq{ALTER USER MAPPING FOR CURRENT_USER SERVER s_ion OPTIONS (SET client_secret 'nope')});
fails_like('SELECT count(*) FROM o_ion', qr/could not obtain an OAuth2 access token for server "s_ion"/,
	'changed mapping: cached token dropped, bad secret refused');

# --- rate limit shared by two sessions
my $ra = start_api('rate', '--orders', '100');
$node->safe_psql('postgres', qq{
CREATE SERVER s_rate FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url '$ra->{url}', rate_limit '4/1s');
CREATE FOREIGN TABLE o_rate (order_code text) SERVER s_rate
  OPTIONS (path '/orders', rows 'data', pagination 'page', page_size '10');});
my @sessions = map {
	my $out = '';
	{ out => \$out,
	  h => IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', 'SELECT count(*) FROM o_rate' ],
		'>', \$out, '2>&1') }
} (1, 2);
$_->{h}->finish for @sessions;
is(join(',', map { ${ $_->{out} } =~ s/\s+//gr } @sessions), '100,100', 'rate limit: both sessions read every row');
my @times = sort { $a <=> $b } map { $_->{time} } api_log($ra);
is(scalar(@times), 22, 'rate limit: 22 requests in all');
my $max_in_window = 0;
for my $i (0 .. $#times)
{
	my $n = grep { $_ >= $times[$i] && $_ < $times[$i] + 1.0 } @times;
	$max_in_window = $n if $n > $max_in_window;
}
cmp_ok($max_in_window, '<=', 8, 'rate limit: at most burst + rate (4 + 4) requests in any second');
cmp_ok($times[-1] - $times[0], '>=', 4, 'rate limit: 22 requests at 4/s took over 4 s');

# --- daily budget, kept across a restart
$node->safe_psql('postgres', qq{
CREATE SERVER s_budget FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url '$ra->{url}', daily_budget '3');
CREATE FOREIGN TABLE o_budget (order_code text) SERVER s_budget OPTIONS (path '/orders', rows 'data');});
$node->safe_psql('postgres', 'SELECT count(*) FROM o_budget; SELECT count(*) FROM o_budget;');
is($node->safe_psql('postgres', q{SELECT mfgsync.http_budget_spent('s_budget')}), '2', 'budget: two requests counted');
$node->restart;
is($node->safe_psql('postgres', q{SELECT mfgsync.http_budget_spent('s_budget')}), '2', 'budget: count kept across a restart');
$node->safe_psql('postgres', 'SELECT count(*) FROM o_budget');
fails_like('SELECT count(*) FROM o_budget', qr/daily request budget of server "s_budget" \(3 requests\) is spent/, 'budget spent');

# --- cancel and statement_timeout interrupt a slow request
$node->safe_psql('postgres', q{
CREATE FOREIGN TABLE o_slow (order_code text) SERVER mes
  OPTIONS (path '/orders', rows 'data', params 'fault=slow&delay_ms=60000');});
$t0 = time();
fails_like(q{SET statement_timeout = '1s'; SELECT count(*) FROM o_slow},
	qr/canceling statement due to statement timeout/, 'statement_timeout');
cmp_ok(time() - $t0, '<', 10, 'statement_timeout: promptly');
my $out = '';
my $h = IPC::Run::start([ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c', 'SELECT count(*) FROM o_slow' ],
	'>', \$out, '2>&1');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE query = 'SELECT count(*) FROM o_slow'}),
	'slow scan running');
$t0 = time();
$node->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query = 'SELECT count(*) FROM o_slow'});
$h->finish;
like($out, qr/canceling statement due to user request/, 'query cancel');
cmp_ok(time() - $t0, '<', 10, 'query cancel: promptly');
is($node->safe_psql('postgres', 'SELECT count(*) FROM orders'), '250', 'backend usable after cancel');

# --- IMPORT FOREIGN SCHEMA
$node->safe_psql('postgres', qq{
CREATE SERVER s_imp FOREIGN DATA WRAPPER mfgsync_http OPTIONS (base_url '$api->{url}',
  resources '{"orders": {"path": "/orders", "rows": "data", "pagination": "page", "page_size": "50"},
              "bookings": "/plain/bookings"}');
CREATE SCHEMA imp;
IMPORT FOREIGN SCHEMA resources FROM SERVER s_imp INTO imp;});
is($node->safe_psql('postgres', q{
SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position)
  FROM information_schema.columns WHERE table_schema = 'imp' AND table_name = 'orders'}),
	'order_code text, product_code text, status text, quantity numeric, start timestamp with time zone, end timestamp with time zone, machine_code text, updated_at timestamp with time zone, urgent boolean, ops jsonb',
	'IMPORT: columns and inferred types');
is($node->safe_psql('postgres', q{SELECT count(*), sum(quantity) FROM imp.orders}), '250|6375', 'IMPORT: imported table scans');
is($node->safe_psql('postgres', q{SELECT count(*), count(quantity) FROM imp.bookings}), '500|250', 'IMPORT: second resource (nulls make no type)');
$node->safe_psql('postgres', q{CREATE SCHEMA imp2; IMPORT FOREIGN SCHEMA resources LIMIT TO (bookings) FROM SERVER s_imp INTO imp2;});
is($node->safe_psql('postgres', q{SELECT string_agg(relname, ',') FROM pg_class WHERE relnamespace = 'imp2'::regnamespace}),
	'bookings', 'IMPORT: LIMIT TO');

done_testing();
