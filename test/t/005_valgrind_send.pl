# The senders' own HTTP/1.1 client (src/http_plain.c) is memcheck-clean:
# the whole server runs under valgrind (its children are forked, not
# exec'd, so the sender runs under memcheck too) while a sender delivers
# to the scripted server answering every way 013_http_plain.pl checks
# (MfgTest's http_script_answers), plus a refused connection, a timeout
# and a host name.  No report may come from mfgsync's code or be other
# than PostgreSQL's known ones (see 003_valgrind.pl for what memcheck sees
# in Debian's build).
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

# MfgTest's answers (the ones 013_http_plain.pl checks), and two more
my %answer = (
	http_script_answers(),
	'/ok' => sub { return "HTTP/1.1 204 No Content\r\n\r\n"; },
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
	close => [ "$base/close", {}, 3, 0 ],
	continue => [ "$base/continue", {}, 3, 0 ],
	partial => [ "$base/partial", { max_attempts => 1 }, 0, 3 ],
	flood => [ "$base/interim-flood", { max_attempts => 1 }, 0, 3 ],
	badchunk => [ "$base/badchunk", { max_attempts => 1 }, 0, 3 ],
	ftp => [ "$base/ftp", { follow_redirects => JSON::PP::true, client_error_attempts => 1 }, 0, 3 ],
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
