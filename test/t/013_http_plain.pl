# The senders' own HTTP/1.1 client for http:// endpoints (src/http_plain.c),
# against a scripted server on 127.0.0.1 that answers the way real servers
# may: chunked bodies with extensions and trailers, answers split across
# packets, interim 100 Continue, HTTP/1.0 bodies that end at close,
# Connection: close, kept-alive connections the server drops, answers over
# max_response_bytes, relative redirects, garbage, and a host name instead
# of an address.  Each endpoint's URL path chooses the server's behaviour.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use JSON::PP;
use MfgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = mfg_cluster('plain');
my $json = JSON::PP->new->canonical;

sub sql { return $node->safe_psql('postgres', $_[0]); }

# ---------------------------------------------------------------------
# the scripted server (MfgTest's start_http_script), answering as
# http_script_answers() says
# ---------------------------------------------------------------------
my %answer = http_script_answers();

# connections are kept per host and port: the endpoints whose checks count
# connections get a server of their own, the others share one
my $server = start_http_script('plain', \%answer);
my $port = $server->{port};
my $server_continue = start_http_script('continue', \%answer);
my $server_stale = start_http_script('stale', \%answer);
my @servers = ($server, $server_continue, $server_stale);

END
{
	local $?;
	stop_http_script($_) for @servers;
}

sub requests { return map { http_script_log($_) } @servers; }

sub requests_to { my ($path) = @_; return grep { $_->{path} eq $path } requests(); }

# ---------------------------------------------------------------------
# one table and one endpoint per behaviour
# ---------------------------------------------------------------------
my $base = "http://127.0.0.1:$port";
my %endpoints = (
	chunked => [ "$base/chunked", { max_attempts => 1 } ],
	close => [ "$base/close", { headers => { 'User-Agent' => 'plant-lyon/1', 'X-Plant' => 'Lyon' } } ],
	stale => [ "http://127.0.0.1:$server_stale->{port}/stale", { concurrency => 1 } ],
	big => [ "$base/big", { max_attempts => 2, max_response_bytes => 1024, retry_initial_ms => 100 } ],
	http10 => [ "$base/http10", { max_attempts => 1 } ],
	garbage => [ "$base/garbage", { max_attempts => 1 } ],
	continue => [ "http://127.0.0.1:$server_continue->{port}/continue?plant=lyon",
		{ concurrency => 1 } ],
	split => [ "$base/split", { max_attempts => 1 } ],
	relative => [ "$base/dir/relative?next=/a/b", { follow_redirects => JSON::PP::true } ],
	ftp => [ "$base/ftp", { follow_redirects => JSON::PP::true, client_error_attempts => 1 } ],
	partial => [ "$base/partial", { max_attempts => 1 } ],
	flood => [ "$base/interim-flood", { max_attempts => 1, timeout_ms => 20000 } ],
	badchunk => [ "$base/badchunk", { max_attempts => 1 } ],
	refused => [ 'http://127.0.0.1:1/', { max_attempts => 1 } ],
	named => [ "http://localhost:$port/named", {} ],
);
endpoint_per_table($node, \%endpoints);

sub settled
{
	my ($name, $delivered, $dead) = @_;
	return wait_until(
		sub {
			sql(qq{SELECT delivered || '/' || dead FROM mfgsync.endpoint_status
				    WHERE name = '$name'}) eq "$delivered/$dead";
		},
		60);
}

sub last_errors
{
	my ($name) = @_;
	return split /\n/, sql(qq{SELECT DISTINCT coalesce(last_status::text, '') || ' ' || last_error
		FROM mfgsync.dead_letters WHERE endpoint = '$name'});
}

# ---------------------------------------------------------------------
# what the client sends
# ---------------------------------------------------------------------
ok(settled('continue', 3, 0), 'an interim 100 Continue, then 200: delivered');
my @c = requests_to('/continue');
is(scalar(@c), 3, 'one request per event');
my ($req) = @c;
is($req->{target}, '/continue?plant=lyon', 'the request target keeps the query');
like($req->{head}, qr/^Host: 127\.0\.0\.1:$server_continue->{port}\r?$/m, 'Host header');
like($req->{head}, qr/^Content-Type: application\/json\r?$/m, 'Content-Type header');
like($req->{head}, qr/^webhook-id: \d+\r?$/m, 'webhook-id header');
my ($clen) = $req->{head} =~ /^Content-Length: (\d+)\r?$/m;
is($clen, length($req->{body}), 'Content-Length is the length of the body');
is(eval { $json->decode($req->{body})->{message_type} }, 'ContinueOrder',
	'the body is the event envelope');
unlike($req->{head}, qr/^Expect:/mi, 'no Expect header');
is(scalar(() = $req->{head} =~ /^User-Agent: mfgsync\/[0-9.]+\r?$/mgi), 1, 'one default User-Agent');
my %conns = map { $_->{conn} => 1 } @c;
is(scalar(keys %conns), 1, 'the three requests went over one kept-alive connection');

# ---------------------------------------------------------------------
# how it reads answers
# ---------------------------------------------------------------------
ok(settled('chunked', 0, 3), 'a chunked 500: dead letters after one attempt');
is_deeply([ last_errors('chunked') ], ['500 HTTP 500: chunk-onechunk-two'],
	'the chunked body is decoded (extension and trailer skipped)');

ok(settled('split', 0, 3), 'an answer in three pieces: dead letters');
is_deeply([ last_errors('split') ], ['500 HTTP 500: split-body'],
	'the pieces make one answer');

ok(settled('http10', 0, 3), 'HTTP/1.0 answer: dead letters');
is_deeply([ last_errors('http10') ], ['500 HTTP 500: body-until-close'],
	'a body without length ends when the server closes the connection');

ok(settled('garbage', 0, 3), 'garbage instead of HTTP: dead letters');
my @g = last_errors('garbage');
is(scalar(@g), 1, 'one error for the three');
like($g[0], qr/^ Unsupported HTTP answer from 127\.0\.0\.1:$port: "hello there"$/,
	'the error names the server and quotes the answer');

ok(settled('big', 0, 3), 'an answer over max_response_bytes: dead letters after two attempts');
my @b = last_errors('big');
is(scalar(@b), 1, 'one error for the three');
like($b[0], qr/^500 HTTP 500: x+/, 'the status stands, the body is kept up to the cap');
my @big = requests_to('/big');
is(scalar(@big), 6, 'two attempts of three events');
%conns = map { $_->{conn} => 1 } @big;
is(scalar(keys %conns), 6, 'a connection with an answer cut short is not reused');

# ---------------------------------------------------------------------
# connections
# ---------------------------------------------------------------------
ok(settled('close', 3, 0), 'Connection: close: delivered');
%conns = map { $_->{conn} => 1 } requests_to('/close');
is(scalar(keys %conns), 3, 'a new connection after each Connection: close');
my $close_head = (requests_to('/close'))[0]{head};
is_deeply([ $close_head =~ /^User-Agent: (.*?)\r?$/mgi ], ['plant-lyon/1'],
	"the endpoint's User-Agent replaces the default");
like($close_head, qr/^X-Plant: Lyon\r?$/m, "the endpoint's custom header");

ok(settled('stale', 3, 0), 'a kept-alive connection the server dropped: delivered');
is(sql(q{SELECT count(*) FROM mfgsync.failures WHERE endpoint = 'stale'}), '0',
	'the request is sent again on a new connection, no failure recorded');
my @stale = requests_to('/stale');
is(scalar(grep { $_->{n} == 1 } @stale), 3, 'each event answered on a fresh connection');
ok(scalar(grep { $_->{n} == 2 } @stale) >= 1,
	'the client did reuse a connection the server then dropped');

ok(settled('relative', 3, 0), 'a relative redirect is followed');
is(scalar(grep { $_->{target} =~ m{^/dir/relative\?next=/a/b$} } requests_to('/dir/relative')), 3,
	'(from a URL whose query has slashes)');
my @moved = requests_to('/dir/moved');
is(scalar(@moved), 3, 'to the Location resolved against the request path');
is($moved[0]{target}, '/dir/moved?x=1', 'with its query');

ok(settled('named', 3, 0), 'a host name (localhost) is resolved and connected to');
like((requests_to('/named'))[0]{head}, qr/^Host: localhost:$port\r?$/m,
	'Host header with the name');

# ---------------------------------------------------------------------
# failures are named
# ---------------------------------------------------------------------
ok(settled('ftp', 0, 3), 'a redirect to ftp: dead letters');
is_deeply([ last_errors('ftp') ], ['307 HTTP 307: redirect to ftp://files.invalid/f not followed'],
	'the Location is kept as it is, not made a path of this server');

ok(settled('partial', 0, 3), 'part of an answer, then the server closes: dead letters');
is_deeply([ last_errors('partial') ],
	[" Connection to 127.0.0.1:$port closed before the answer was complete"],
	'named as an incomplete answer, not an empty one');

ok(settled('flood', 0, 3), 'endless interim answers: dead letters');
is_deeply([ last_errors('flood') ],
	[" Header section from 127.0.0.1:$port larger than 65536 bytes"],
	'the head limit counts interim heads');

ok(settled('badchunk', 0, 3), 'an empty chunk-size line: dead letters');
is_deeply([ last_errors('badchunk') ], [" Invalid chunk size from 127.0.0.1:$port"],
	'a malformed chunk size is an error');

ok(settled('refused', 0, 3), 'a refused connection: dead letters');
is_deeply([ last_errors('refused') ], [' Failed to connect to 127.0.0.1:1: Connection refused'],
	'the error names the address');

# ---------------------------------------------------------------------
# mfgsync.http_client = libcurl: http:// endpoints go through libcurl
# ---------------------------------------------------------------------
$node->append_conf('postgresql.conf', "mfgsync.http_client = 'libcurl'");
$node->reload;
endpoint_per_table($node, {
	curl_refused => [ 'http://127.0.0.1:1/', { max_attempts => 3, retry_initial_ms => 100 } ],
	curl_ok => [ "$base/dir/moved", {} ] });
ok(settled('curl_ok', 3, 0), 'with libcurl: delivered');
ok(settled('curl_refused', 0, 3), 'with libcurl: a refused connection, dead letters');
my @curl = last_errors('curl_refused');
like($curl[0] // '', qr/^ Failed to connect to 127\.0\.0\.1 port 1 after \d+ ms: /,
	"the error is libcurl's (the setting was applied on reload)");

# nothing went wrong in the server
my $serverlog = slurp_file($node->logfile);
unlike($serverlog, qr/TRAP:|terminated by signal|PANIC/, 'no crash in the server log');

done_testing();
