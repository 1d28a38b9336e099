# mfgsync refuses to load outside shared_preload_libraries, with a hint.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('no_preload');
$node->init;
$node->start;

my ($ret, $stdout, $stderr) =
  $node->psql('postgres', 'CREATE EXTENSION mfgsync', on_error_stop => 1);
isnt($ret, 0, 'CREATE EXTENSION fails without shared_preload_libraries');
like($stderr, qr/ERROR:  mfgsync must be loaded via "shared_preload_libraries"/,
    'the error says why');
like($stderr, qr/HINT:  Add mfgsync to "shared_preload_libraries" in postgresql.conf and restart the server./,
    'the hint says what to do');
is($node->safe_psql('postgres',
        q{SELECT count(*) FROM pg_extension WHERE extname = 'mfgsync'}),
    '0', 'nothing was created');

($ret, $stdout, $stderr) = $node->psql('postgres', q{LOAD 'mfgsync'});
like($stderr, qr/must be loaded via "shared_preload_libraries"/,
    'LOAD is refused the same way');

# with the library preloaded, the same command works
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'mfgsync'");
$node->restart;
$node->safe_psql('postgres', 'CREATE EXTENSION mfgsync');
is($node->safe_psql('postgres', 'SHOW mfgsync.batch_size'), '100',
    'with the library preloaded the extension and its settings are there');

$node->stop;
done_testing();
