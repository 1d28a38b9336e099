# The senders' own HTTP/1.1 client (src/http_plain.c) is memcheck-clean:
# the whole server runs under valgrind (its children are forked, not
# exec'd, so the sender runs under memcheck too) while a sender delivers
# to a scripted server answering in every way the client parses: chunked,
# split, interim 1xx, until close, over max_response_bytes, garbage, a
# dropped kept-alive connection, a relative redirect, a refused
# connection, a timeout and a host name.  No error may point into
# mfgsync.so or be anything but PostgreSQL's known uninitialised WAL
# padding (see 003_valgrind.pl for what memcheck sees in Debian's build).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use JSON::PP;
use MfgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my %answer = (
	'/ok' => sub { return "HTTP/1.1 204 No Content\r\n\r\n"; },
	'/chunked' => sub {
		return "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n"
		  . "9;note=1\r\nchunk-one\r\n9\r\nchunk-two\r\n0\r\nX-Trailer: t\r\n\r\n";
	},
	'/split' => sub {
		return [ "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Split\r\nContent-Le",
			"ngth: 10\r\n\r\nspl", "it-body" ];
	},
	'/http10' => sub { return ("HTTP/1.0 500 Old\r\n\r\nbody-until-close", 'close'); },
	'/big' => sub {
		return "HTTP/1.1 500 Too Much\r\nContent-Length: 100000\r\n\r\n" . ('x' x 100000);
	},
	'/garbage' => sub { return ("hello there\r\n\r\n", 'close'); },
	'/stale' => sub {
		my ($n) = @_;
		return $n == 1 ? "HTTP/1.1 204 No Content\r\n\r\n" : ('', 'close');
	},
	'/dir/relative' => sub {
		return "HTTP/1.1 307 Temporary Redirect\r\nLocation: moved\r\nContent-Length: 0\r\n\r\n";
	},
	'/dir/moved' => sub { return "HTTP/1.1 204 No Content\r\n\r\n"; },
	'/hang' => sub { return ('', 'hang'); },
);
my $server = start_http_script('memcheck', \%answer);
my $port = $server->{port};

my $node = PostgreSQL::Test::Cluster->new('sendcheck');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'mfgsync'
mfgsync.database = 'postgres'
mfgsync.max_workers = 1
autovacuum = off
});

my $vglog = $node->basedir . '/memcheck.%p.log';
my ($out, $err) = ('', '');
my $postmaster = IPC::Run::start(
	[ 'valgrind', '--tool=memcheck', '--num-callers=30', '--error-limit=no',
	  # glibc's own clean-up at exit frees what getaddrinfo_a's thread kept
	  # in a way memcheck misreads; it is not run in production either
	  '--run-libc-freeres=no',
	  "--log-file=$vglog", 'postgres', '-D', $node->data_dir ],
	'>', \$out, '2>', \$err);

END
{
	local $?;
	stop_http_script($server) if $server;
	if ($postmaster && $postmaster->pumpable)
	{
		system('pg_ctl', '-D', $node->data_dir, '-m', 'immediate', 'stop');
		$postmaster->finish;
	}
}

ok(wait_until(
		sub {
			system('pg_isready', '-q', '-h', $node->host, '-p', $node->port) == 0;
		},
		180),
	'the server started under memcheck');

sub sql { return $node->safe_psql('postgres', $_[0], timeout => 300); }

my $base = "http://127.0.0.1:$port";
my %endpoints = (
	ok => [ "$base/ok", { concurrency => 1 }, 3, 0 ],
	named => [ "http://localhost:$port/ok", {}, 3, 0 ],
	chunked => [ "$base/chunked", { max_attempts => 1 }, 0, 3 ],
	split => [ "$base/split", { max_attempts => 1 }, 0, 3 ],
	http10 => [ "$base/http10", { max_attempts => 1 }, 0, 3 ],
	big => [ "$base/big", { max_attempts => 1, max_response_bytes => 1024 }, 0, 3 ],
	garbage => [ "$base/garbage", { max_attempts => 1 }, 0, 3 ],
	stale => [ "$base/stale", { concurrency => 1 }, 3, 0 ],
	relative => [ "$base/dir/relative", { follow_redirects => JSON::PP::true }, 3, 0 ],
	refused => [ 'http://127.0.0.1:1/', { max_attempts => 1 }, 0, 3 ],
	hang => [ "$base/hang", { max_attempts => 1, timeout_ms => 1000 }, 0, 3 ],
);
sql('CREATE EXTENSION mfgsync');
endpoint_per_table($node, \%endpoints);

my $want = join "\n", map { "$_ $endpoints{$_}[2] $endpoints{$_}[3]" } sort keys %endpoints;
my $got;
ok(wait_until(
		sub {
			$got = sql(q{SELECT string_agg(name || ' ' || delivered || ' ' || dead, E'\n' ORDER BY name)
				FROM mfgsync.endpoint_status});
			return $got eq $want;
		},
		300),
	'every endpoint settled as expected under memcheck')
  or diag("got:\n$got\nwant:\n$want");

system('pg_ctl', '-D', $node->data_dir, '-m', 'fast', '-w', 'stop') == 0
  or diag('pg_ctl stop failed');
$postmaster->finish;

my @logs = glob($node->basedir . '/memcheck.*.log');
ok(@logs >= 4, 'memcheck followed the postmaster, the launcher, the sender and the backends')
  or diag(scalar(@logs) . ' memcheck logs');
# PostgreSQL's own: uninitialised padding written to WAL and to the
# relcache init file, and the regex cache's memmove that _FORTIFY_SOURCE
# routes to __memcpy_chk
my ($ours, $other) = memcheck_judge(\@logs,
	qr/Syscall param pwrite64\(buf\) points to uninitialised byte\(s\).*XLog/s,
	qr/Syscall param write\(buf\) points to uninitialised byte\(s\).*RelationCacheInitializePhase3/s,
	qr/Source and destination overlap in memcpy_chk.*RE_compile_and_cache/s);
is(scalar(@$ours), 0, 'no memcheck error in mfgsync\'s code')
  or diag(join("\n----\n", @$ours));
is(scalar(@$other), 0, 'no memcheck error other than PostgreSQL\'s known ones')
  or diag(join("\n----\n", @$other));

done_testing();
