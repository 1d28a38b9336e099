# test/t/MfgMaria.pm - a throwaway MariaDB server for mfgsync's TAP tests:
# Debian's mariadb-install-db and mariadbd, run as the test's (unprivileged)
# user, with their own data directory and socket, on 127.0.0.1 at a port
# chosen at run time.  maria_start/maria_stop/maria_kill manage it,
# maria_sql runs statements as root over the socket.
package MfgMaria;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use MfgTest;

our @EXPORT = qw(maria_new maria_start maria_stop maria_kill maria_sql);

my @servers;

# maria_new(name): initialise a data directory; returns the server hash
# (dir, socket, port) without starting it
sub maria_new
{
	my ($name) = @_;
	my $dir = PostgreSQL::Test::Utils::tempdir("maria_$name");
	my %m = (name => $name, dir => $dir, socket => "$dir/mysqld.sock",
		port => PostgreSQL::Test::Cluster::get_free_port());
	my ($out, $err);
	IPC::Run::run(
		[ 'mariadb-install-db', '--no-defaults', "--datadir=$dir/data",
		  '--auth-root-authentication-method=normal', '--skip-test-db' ],
		'>', \$out, '2>', \$err)
	  or die "mariadb-install-db failed: $err$out";
	push @servers, \%m;
	return \%m;
}

# maria_start(m): start mariadbd and wait until it answers
sub maria_start
{
	my ($m) = @_;
	unlink $m->{socket};
	$m->{handle} = IPC::Run::start(
		[ '/usr/sbin/mariadbd', '--no-defaults', "--datadir=$m->{dir}/data",
		  "--socket=$m->{socket}", "--port=$m->{port}",
		  '--bind-address=127.0.0.1', "--pid-file=$m->{dir}/mariadbd.pid",
		  "--log-error=$m->{dir}/error.log", '--skip-log-bin',
		  '--innodb-buffer-pool-size=128M', '--skip-name-resolve' ],
		'>', "$m->{dir}/stdout", '2>&1');
	wait_until(
		sub {
			IPC::Run::run([ 'mariadb-admin', '--no-defaults', '-S', $m->{socket},
				  '-u', 'root', 'ping' ], '>', \my $o, '2>', \my $e);
		},
		60, "mariadb $m->{name} up")
	  or die "mariadbd $m->{name} did not start: " . slurp_file("$m->{dir}/error.log");
	return;
}

# maria_stop(m): a clean shutdown
sub maria_stop
{
	my ($m) = @_;
	return unless $m->{handle} && $m->{handle}->pumpable;
	IPC::Run::run([ 'mariadb-admin', '--no-defaults', '-S', $m->{socket},
		  '-u', 'root', 'shutdown' ], '>', \my $o, '2>', \my $e);
	$m->{handle}->finish;
	return;
}

# maria_kill(m): SIGKILL, as a crash or a pulled cable would end it
sub maria_kill
{
	my ($m) = @_;
	$m->{handle}->signal('KILL');
	$m->{handle}->finish;
	return;
}

# maria_sql(m, sql): run statements as root; returns the output (tab
# separated, no headers); dies on error
sub maria_sql
{
	my ($m, $sql) = @_;
	my ($out, $err);
	IPC::Run::run([ 'mariadb', '--no-defaults', '-S', $m->{socket}, '-u', 'root',
		  '-N', '-B', '-e', $sql ], '>', \$out, '2>', \$err)
	  or die "mariadb: $err";
	chomp $out;
	return $out;
}

END
{
	for my $m (@servers)
	{
		eval { $m->{handle}->kill_kill if $m->{handle} && $m->{handle}->pumpable; };
	}
}

1;
