# test/t/MfgTest.pm - shared helpers for mfgsync's TAP tests: a cluster
# with mfgsync preloaded, the webhook receiver (test/receiver.py) on
# 127.0.0.1, its request log, and waiting on a condition with a bound.
package MfgTest;

use strict;
use warnings;
use Exporter 'import';
use File::Basename;
use File::Spec;
use IO::Socket::INET;
use IPC::Run;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(mfg_cluster start_receiver stop_receiver receiver_log
  receiver_url wait_until per_key_order_ok start_receiver_on_port
  start_file_server tail_new tail_read start_http_script stop_http_script
  http_script_log http_script_answers endpoint_per_table memcheck_judge);

my @started;
my $receiver_py = File::Spec->rel2abs(dirname(__FILE__) . '/../receiver.py');

# mfg_cluster(name, extra postgresql.conf text): a started cluster with
# mfgsync preloaded, its workers in database postgres, the extension there
sub mfg_cluster
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'mfgsync'
mfgsync.database = 'postgres'
mfgsync.max_workers = 2
} . ($conf // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION mfgsync');
	return $node;
}

# start_receiver(name, options...): test/receiver.py on 127.0.0.1; returns
# a hash with port, log, url
sub start_receiver
{
	my ($name, @opts) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("receiver_$name");
	my %r = (name => $name, log => "$dir/requests.log",
		portfile => "$dir/port", out => "$dir/out");
	$r{handle} = IPC::Run::start(
		[ 'python3', $receiver_py, '--port', $r{port} // 0,
		  '--port-file', $r{portfile}, '--log', $r{log}, @opts ],
		'>', $r{out}, '2>&1');
	wait_until(sub { -s $r{portfile} }, 30, "receiver $name listening")
	  or die "receiver $name did not start";
	$r{port} = slurp_file($r{portfile});
	chomp $r{port};
	$r{opts} = \@opts;
	push @started, \%r;
	return \%r;
}

# receivers still running when the test ends (also when it dies) are stopped
# start_file_server(dir): a Python HTTP server on 127.0.0.1 answering GET
# /name with the file dir/name (query strings ignored); returns its port
sub start_file_server
{
	my ($dir) = @_;
	my $portfile = "$dir.port";
	my %r = (portfile => $portfile);
	$r{handle} = IPC::Run::start(
		[ 'python3', '-c', q{
import http.server, os, sys
class H(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
    def translate_path(self, path):
        return http.server.SimpleHTTPRequestHandler.translate_path(self, path.split('?')[0])
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
        lambda *a: H(*a, directory=sys.argv[1]))
open(sys.argv[2] + '.tmp', 'w').write(str(s.server_address[1]))
os.rename(sys.argv[2] + '.tmp', sys.argv[2])
s.serve_forever()
}, $dir, $portfile ],
		'>', "$dir.out", '2>&1');
	push @started, \%r;
	wait_until(sub { -s $portfile }, 30, 'file server listening')
	  or die 'file server did not start';
	return slurp_file($portfile);
}

END
{
	# the servers' exit statuses are not the test's
	local $?;
	for my $r (@started)
	{
		eval { $r->{handle}->signal('TERM'); $r->{handle}->finish; }
		  if $r->{handle}->pumpable;
	}
}

# start_receiver_on_port(name, port, options...): start_receiver listening
# on the given port (e.g. the one an endpoint already points at); argparse
# takes the last --port, so this one wins over start_receiver's --port 0
sub start_receiver_on_port
{
	my ($name, $port, @opts) = @_;
	return start_receiver($name, '--port', $port, @opts);
}

# stop_receiver(r): SIGTERM and wait
sub stop_receiver
{
	my ($r) = @_;
	$r->{handle}->signal('TERM');
	$r->{handle}->finish;
	unlink $r->{portfile};
	return;
}

sub receiver_url
{
	my ($r, $path) = @_;
	return "http://127.0.0.1:$r->{port}" . ($path // '/hook');
}

# start_http_script(name, \%answer): a scripted HTTP/1.1 server on
# 127.0.0.1, one process per connection, for the senders' own HTTP client.
# $answer{path}->(n) gives the answer to the n-th request of a connection
# to that path: a string, or an array of strings written 20 ms apart (so
# the client reads a partial answer), and optionally 'close' (close the
# connection after it) or 'hang' (keep it open without answering).  Each
# request is logged as a JSON line {conn (the process), n, path, target,
# head, body}; returns { port, log, pid }.
sub start_http_script
{
	my ($name, $answer) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("http_script_$name");
	my $log = "$dir/requests.log";
	my $json = JSON::PP->new->canonical;
	my $listener = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Listen => 64,
		ReuseAddr => 1) or die "listen: $!";
	my $port = $listener->sockport;

	my $serve = sub {
		my ($c) = @_;
		my $buf = '';
		my $n = 0;
		open my $lf, '>>', $log or die "open $log: $!";
		$lf->autoflush(1);
		while (1)
		{
			# one request: its head, then Content-Length bytes of body
			my $head_end;
			while (($head_end = index($buf, "\r\n\r\n")) < 0)
			{
				return if !sysread($c, $buf, 65536, length $buf);
			}
			my $head = substr($buf, 0, $head_end);
			my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
			$len //= 0;
			while (length($buf) < $head_end + 4 + $len)
			{
				return if !sysread($c, $buf, 65536, length $buf);
			}
			my $body = substr($buf, $head_end + 4, $len);
			$buf = substr($buf, $head_end + 4 + $len);
			$n++;
			my ($target) = $head =~ /^POST (\S+) HTTP\/1\.1\r\n/;
			$target //= '?';
			(my $path = $target) =~ s/\?.*//;
			print $lf $json->encode({ conn => $$, n => $n, path => $path,
				target => $target, head => $head, body => $body }) . "\n";
			my $how = $answer->{$path}
			  // sub { return "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"; };
			my ($out, $then) = $how->($n);
			for my $piece (ref $out ? @$out : ($out))
			{
				syswrite($c, $piece);
				# lets the client read a partial answer (not a synchronisation)
				usleep(20_000) if ref $out;
			}
			sleep while defined $then && $then eq 'hang';
			return if defined $then && $then eq 'close';
		}
	};

	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		# a process group of its own, so stop_http_script ends it all
		POSIX::setpgid(0, 0);
		$SIG{CHLD} = 'IGNORE';
		while (1)
		{
			my $c = $listener->accept or next;
			my $kid = fork();
			if (defined $kid && $kid == 0)
			{
				$serve->($c);
				# not exit: the END blocks (the cluster's) are the parent's
				POSIX::_exit(0);
			}
			close $c;
		}
	}
	POSIX::setpgid($pid, $pid);    # also here: whichever runs first
	close $listener;
	return { port => $port, log => $log, pid => $pid };
}

# http_script_answers(): start_http_script's answers by path, each a way a
# real server may answer (TAP 013 checks what the client makes of each;
# 005 runs them under memcheck)
sub http_script_answers
{
	return (
		# 500 with a chunked body, a chunk extension and a trailer
		'/chunked' => sub {
			return "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: Chunked\r\n\r\n"
			  . "9;note=1\r\nchunk-one\r\n9\r\nchunk-two\r\n0\r\nX-Trailer: t\r\n\r\n";
		},
		# 204 with "close" among the Connection tokens; the server keeps the
		# connection open, so a client that reused it would show as n = 2
		'/close' => sub { return "HTTP/1.1 204 No Content\r\nConnection: keep-alive, close\r\n\r\n"; },
		# part of the body, then the server closes
		'/partial' => sub { return ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 'close'); },
		# a redirect to another scheme is not made a path of this server
		'/ftp' => sub {
			return "HTTP/1.1 307 Temporary Redirect\r\nLocation: ftp://files.invalid/f\r\nContent-Length: 0\r\n\r\n";
		},
		# interim answers without end: the head limit counts them all
		'/interim-flood' => sub { return ("HTTP/1.1 103 Early Hints\r\n\r\n" x 2500, 'hang'); },
		# an empty chunk-size line
		'/badchunk' => sub {
			return "HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
		},
		# the first request of a connection is answered; the next one finds
		# the connection closed (the race of a kept-alive connection that the
		# server times out just as the client reuses it)
		'/stale' => sub {
			my ($n) = @_;
			return $n == 1 ? "HTTP/1.1 204 No Content\r\n\r\n" : ('', 'close');
		},
		# an answer far over max_response_bytes
		'/big' => sub {
			return "HTTP/1.1 500 Too Much\r\nContent-Length: 100000\r\n\r\n" . ('x' x 100000);
		},
		# HTTP/1.0 without Content-Length: the body ends when the server closes
		'/http10' => sub { return ("HTTP/1.0 500 Old\r\n\r\nbody-until-close", 'close'); },
		'/garbage' => sub { return ("hello there\r\n\r\n", 'close'); },
		# an interim answer before the real one
		'/continue' => sub {
			return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
		},
		# the answer in three writes, cut inside a header and the body
		'/split' => sub {
			return [ "HTTP/1.1 500 Split\r\nContent-Le", "ngth: 10\r\n\r\nspl", "it-body" ];
		},
		# a redirect relative to the request's path
		'/dir/relative' => sub {
			return "HTTP/1.1 307 Temporary Redirect\r\nLocation: moved?x=1\r\nContent-Length: 0\r\n\r\n";
		},
		'/dir/moved' => sub { return "HTTP/1.1 204 No Content\r\n\r\n"; },
		'/named' => sub { return "HTTP/1.1 204 No Content\r\n\r\n"; },
	);
}

# stop_http_script(s): the server and the connections it serves
sub stop_http_script
{
	my ($s) = @_;
	kill 'KILL', -$s->{pid};
	return;
}

# http_script_log(s): the requests so far, in arrival order
sub http_script_log
{
	my ($s) = @_;
	my @r;
	open my $fh, '<', $s->{log} or return ();
	while (my $line = <$fh>)
	{
		push @r, decode_json($line) if $line =~ /\n\z/;
	}
	close $fh;
	return @r;
}

# endpoint_per_table(node, \%endpoints): for each name => [url, options],
# a table <name>_order tracked as message type <Name>Order and an endpoint
# <name> on url subscribed to it; then three orders in each table, all in
# one transaction
sub endpoint_per_table
{
	my ($node, $endpoints) = @_;
	my $json = JSON::PP->new->canonical;
	for my $name (sort keys %$endpoints)
	{
		my ($url, $opts) = @{ $endpoints->{$name} };
		my $type = ucfirst($name) . 'Order';
		$node->safe_psql('postgres', qq{
			CREATE TABLE ${name}_order (order_code text PRIMARY KEY, quantity numeric);
			SELECT mfgsync.track('${name}_order', '$type');
			SELECT mfgsync.create_endpoint('$name', '$url', 'webhook', '}
			  . $json->encode($opts) . qq{');
			SELECT mfgsync.subscribe('$name', '{$type}');}, timeout => 300);
	}
	$node->safe_psql('postgres',
		join('', map { "INSERT INTO ${_}_order SELECT 'O-' || g, g FROM generate_series(1, 3) g;" }
			  sort keys %$endpoints), timeout => 300);
	return;
}

# memcheck_judge(\@logs, @known): the error reports in valgrind logs, as
# (\@ours, \@other).  Ours: a frame of mfgsync's code (mfgsync.so, or a
# file of src/ with its line) comes before the first frame of PostgreSQL's;
# a PostgreSQL function erring when called by ours is PostgreSQL's report.
# Other: every report that matches none of the regexps in @known
# (PostgreSQL's own known reports in Debian's build, which has no
# USE_VALGRIND).
sub memcheck_judge
{
	my ($logs, @known) = @_;
	my @sources = map { basename($_) } glob(dirname(__FILE__) . '/../../src/*.c');
	my $our_frame = join '|', 'mfgsync\.so', map { quotemeta($_) . ':\d+' } @sources;
	my (@ours, @other);
	for my $report (map { split /\n==\d+== \n/, PostgreSQL::Test::Utils::slurp_file($_) } @$logs)
	{
		next unless $report =~
		  /==\d+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and destination)/;
		for my $frame ($report =~ /^==\d+==\s+(?:at|by) 0x[0-9A-F]+: (.*)$/mg)
		{
			if ($frame =~ /$our_frame/)
			{
				push @ours, $report;
				last;
			}
			last if $frame =~ m{bin/postgres|plpgsql\.so};
		}
		push @other, $report unless grep { $report =~ $_ } @known;
	}
	return (\@ours, \@other);
}

# receiver_log(r): every request so far, as hashes (see test/receiver.py)
sub receiver_log
{
	my ($r) = @_;
	my @requests;
	return @requests unless -e $r->{log};
	open my $fh, '<', $r->{log} or die "cannot open $r->{log}: $!";
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/;    # a line still being written
		push @requests, decode_json($line);
	}
	close $fh;
	return @requests;
}

# tail_new(r) / tail_read(t): a receiver's log read incrementally, for runs
# of many thousand requests: only new complete lines are parsed, and only
# with regular expressions (JSON::PP needs ~0.7 ms per request).  tail_read
# returns every request so far, in arrival order, each as { id (the
# webhook-id), message_type, key (its JSON text, identical for equal keys),
# status }; the first 200 lines are kept as read in $t->{raw}, to check the
# expressions against a real JSON parse.
sub tail_new { return { r => $_[0], pos => 0, reqs => [], raw => [] }; }

sub tail_read
{
	my ($t) = @_;
	my $log = $t->{r}{log};
	return $t->{reqs} unless -e $log;
	open my $fh, '<:raw', $log or die "cannot open $log: $!";
	seek $fh, $t->{pos}, 0;
	while (my $line = <$fh>)
	{
		last unless $line =~ /\n\z/;    # still being written
		$t->{pos} += length $line;
		my ($wid) = $line =~ /"webhook-id": "([^"]*)"/;
		my ($mt) = $line =~ /\\"message_type\\":\\"([^\\"]*)\\"/;
		my ($key) = $line =~ /\\"key\\":(\{[^}]*\})/;
		my ($status) = $line =~ /"status": (\d+)/;
		$key =~ s/\\"/"/g if defined $key;
		push @{ $t->{reqs} },
		  { id => $wid, message_type => $mt, key => $key, status => $status };
		push @{ $t->{raw} }, $line if @{ $t->{raw} } < 200;
	}
	close $fh;
	return $t->{reqs};
}

# wait_until(cond, seconds, what): poll cond until true or the time is up
sub wait_until
{
	my ($cond, $seconds, $what) = @_;
	my $deadline = time() + $seconds;
	while (time() < $deadline)
	{
		return 1 if $cond->();
		usleep(50_000);
	}
	return $cond->() ? 1 : 0;
}

# per_key_order_ok(\@events): given the delivered events (decoded webhook
# bodies, in arrival order), check that for every key the first
# arrivals of its event ids are increasing.  Returns an error or ''.
sub per_key_order_ok
{
	my ($events) = @_;
	my $canonical = JSON::PP->new->canonical;
	my (%seen, %last);
	for my $e (@$events)
	{
		next if $seen{ $e->{id} }++;    # a redelivery: receivers dedupe
		my $k = $e->{message_type} . ' ' . $canonical->encode($e->{key});
		if (defined $last{$k} && $last{$k} > $e->{id})
		{
			return "key $k: event $e->{id} arrived after $last{$k}";
		}
		$last{$k} = $e->{id};
	}
	return '';
}

1;
