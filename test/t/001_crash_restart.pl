# Events survive restarts and crashes exactly as committed: nothing lost,
# nothing from an uncommitted transaction, prepared transactions intact.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('capture');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'mfgsync'
max_prepared_transactions = 5
});
$node->start;

$node->safe_psql('postgres', q{
    CREATE EXTENSION mfgsync;
    CREATE TABLE production_order (order_code text PRIMARY KEY,
                                   machine_code text, quantity numeric);
    SELECT mfgsync.track('production_order', 'ProductionOrder');
    SELECT mfgsync.register_consumer('erp');
});
$node->safe_psql('postgres', q{
    INSERT INTO production_order
    SELECT 'PO-' || g, 'M-1', g FROM generate_series(1, 1000) g;
    UPDATE production_order SET machine_code = 'M-2' WHERE quantity <= 10;
});

# a fingerprint of every event: id, action, key and payloads
my $fingerprint = q{
    SELECT count(*) || ' ' || md5(string_agg(id || action || key::text
                                             || coalesce(data::text, '')
                                             || coalesce(old_data::text, ''),
                                             ',' ORDER BY id))
      FROM mfgsync.events};

my $before = $node->safe_psql('postgres', $fingerprint);
like($before, qr/^1010 /, '1000 Add and 10 Change events captured');

$node->restart;
is($node->safe_psql('postgres', $fingerprint), $before,
    'events intact after a clean restart');

# committed after the last checkpoint, so that crash recovery replays them:
# a bulk statement, written through the multi-insert path in several flushes
my $lsn_before_bulk = $node->safe_psql('postgres', q{SELECT pg_current_wal_insert_lsn()});
$node->safe_psql('postgres', q{
    INSERT INTO production_order SELECT 'BULK-' || g, 'M-3', g FROM generate_series(1, 2500) g;
});

# crash with one transaction open and one prepared
my $open = $node->background_psql('postgres');
$open->query_safe(q{BEGIN});
$open->query_safe(q{INSERT INTO production_order VALUES ('PO-open', 'M-9', 1)});
$node->safe_psql('postgres', q{
    BEGIN;
    INSERT INTO production_order VALUES ('PO-prepared', 'M-8', 1);
    PREPARE TRANSACTION 'p1';
});
$node->safe_psql('postgres',
    q{DELETE FROM production_order WHERE order_code = 'PO-1'});
my $before_crash = $node->safe_psql('postgres', $fingerprint);
like($before_crash, qr/^3511 /, 'the committed Delete is the 3511th event');
is( $node->safe_psql('postgres',
        qq{SELECT redo_lsn < '$lsn_before_bulk' FROM pg_control_checkpoint()}),
    't', 'no checkpoint since the bulk insert: recovery will replay it');

$node->stop('immediate');
eval { $open->quit };    # its server is gone
$node->start;

is($node->safe_psql('postgres', $fingerprint), $before_crash,
    'committed events intact after a crash (-m immediate)');
is( $node->safe_psql('postgres',
        q{SELECT count(*) FROM mfgsync.events WHERE key->>'order_code' = 'PO-open'}),
    '0', 'the transaction open at the crash left no event');
is( $node->safe_psql('postgres',
        q{SELECT count(*) FROM mfgsync.events WHERE key->>'order_code' = 'PO-prepared'}),
    '0', 'the prepared transaction\'s event is not visible before it commits');

$node->safe_psql('postgres', q{COMMIT PREPARED 'p1'});
is( $node->safe_psql('postgres',
        q{SELECT action FROM mfgsync.events WHERE key->>'order_code' = 'PO-prepared'}),
    'Add', 'the prepared transaction\'s event appears with its commit');

# new events continue after the crash with larger, unique ids
$node->safe_psql('postgres',
    q{INSERT INTO production_order VALUES ('PO-after', 'M-1', 1)});
is( $node->safe_psql('postgres', q{
        SELECT (SELECT id FROM mfgsync.events WHERE key->>'order_code' = 'PO-after')
             > (SELECT max(id) FROM mfgsync.events WHERE key->>'order_code' <> 'PO-after')}),
    't', 'ids keep increasing after the crash');

# the consumer registered before the crash reads every event exactly once
is( $node->safe_psql('postgres', q{
        SELECT count(*) || ' ' || count(DISTINCT id) FROM mfgsync.read_events('erp')}),
    '3513 3513', 'the reader gets all 3513 events once');
is($node->safe_psql('postgres', q{SELECT count(*) FROM mfgsync.read_events('erp')}),
    '0', 'and nothing twice');

# replaying the events reproduces the staging table
is( $node->safe_psql('postgres', q{
        WITH latest AS (
            SELECT DISTINCT ON (key) key, action, data
              FROM mfgsync.events ORDER BY key, id DESC)
        SELECT count(*)
          FROM latest l
               FULL JOIN production_order p ON p.order_code = l.key->>'order_code'
         WHERE l.data IS DISTINCT FROM to_jsonb(p)
           AND NOT (l.action = 'Delete' AND p.order_code IS NULL)}),
    '0', 'the latest event of every key matches the table');

$node->stop;
done_testing();
