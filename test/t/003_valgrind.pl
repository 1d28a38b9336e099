# The capture trigger is memcheck-clean: a single-user backend runs every
# capture path under valgrind, and no error may point into mfgsync.so or be
# anything but PostgreSQL's known uninitialised WAL padding.  Debian's
# PostgreSQL is not built with USE_VALGRIND, so memcheck sees malloc'd
# blocks, not palloc chunks: it catches accesses to freed or unallocated
# blocks (a reset context returns its blocks), not to a freed chunk inside a
# live block.
use strict;
use warnings;
use File::Basename;
use IPC::Run;
use lib dirname(__FILE__);
use MfgTest;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('memcheck');
$node->init;
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'mfgsync'");

# one statement a line: single-user mode ends a statement at a newline
my $sql = <<'SQL';
CREATE EXTENSION mfgsync;
CREATE TABLE po (order_code text PRIMARY KEY, machine_code text, qty numeric(12,3), start timestamptz, note text, tags text[], by bytea);
SELECT mfgsync.track('po', 'ProductionOrder', NULL, '{"order_code": "ID", "machine_code": "EquipmentID", "qty": "Quantity", "start": "Start", "tags": "Tags", "by": "Bytes"}', true);
SELECT mfgsync.register_consumer('memcheck');
INSERT INTO po VALUES ('PO-1', 'M-1', 1.5, now(), 'a', '{x,y}', '\x00ff'), ('PO-2', 'M-2', 2, now(), 'b', NULL, NULL);
UPDATE po SET machine_code = 'M-3' WHERE order_code = 'PO-1';
UPDATE po SET note = 'unmapped' WHERE order_code = 'PO-1';
UPDATE po SET order_code = order_code || 'A';
INSERT INTO po (order_code, machine_code) SELECT 'B-' || g, 'M-' || (g % 7) FROM generate_series(1, 5000) g;
UPDATE po SET qty = 3 WHERE order_code LIKE 'B-%';
INSERT INTO po (order_code, note, machine_code) SELECT 'BIG', string_agg(md5(g::text), ''), string_agg(md5(g::text), '') FROM generate_series(1, 3000) g;
INSERT INTO po (order_code) VALUES ('PO-9') ON CONFLICT (order_code) DO UPDATE SET machine_code = 'X';
INSERT INTO po (order_code) VALUES ('PO-9') ON CONFLICT (order_code) DO UPDATE SET machine_code = 'X';
DELETE FROM po WHERE order_code LIKE 'B-%';
SELECT count(*) AS read_events FROM mfgsync.read_events('memcheck');
ALTER TABLE po ADD COLUMN extra int;
SELECT mfgsync.track('po', 'ProductionOrder', truncate_event => true);
UPDATE po SET extra = 1;
TRUNCATE po;
SELECT count(*) AS total_events FROM mfgsync.events;
CREATE INDEX outbox_action_idx ON mfgsync.outbox (action);
INSERT INTO po (order_code) VALUES ('IDX-1');
DROP INDEX mfgsync.outbox_action_idx;
INSERT INTO po (order_code) VALUES ('IDX-2');
DROP EXTENSION mfgsync;
CREATE EXTENSION mfgsync;
SELECT mfgsync.track('po', 'ProductionOrder');
INSERT INTO po (order_code) VALUES ('NEW-1');
SELECT count(*) AS new_outbox_events FROM mfgsync.outbox;
SQL

my $log = $node->basedir . '/memcheck.log';
my ($out, $err);
my $ok = IPC::Run::run(
    [ 'valgrind', '--tool=memcheck', '--num-callers=30', '--error-limit=no',
      "--log-file=$log", 'postgres', '--single', '-D', $node->data_dir, 'postgres' ],
    '<', \$sql, '>', \$out, '2>', \$err);
ok($ok, 'the single-user backend ran the workload under memcheck and exited cleanly');

# the workload really ran.  Read: 2 Add, 1 Change, 0 for the unmapped
# column, 2 x (Delete + Add) for the key changes, 5000 Add, 5000 Change,
# 1 Add (BIG), 1 Add + 1 Change (ON CONFLICT), 5000 Delete = 15010.  Then
# 4 Change (extra = 1 on the 4 rows left) and 1 Truncate = 15015.  Then
# the outbox's index list changes and the extension is re-created under
# the session's cached outbox: one event in the new outbox.
like($out, qr/read_events = "15010"/, 'every capture path ran: 15010 events read');
like($out, qr/total_events = "15015"/, 'and 15015 events in total');
like($out, qr/new_outbox_events = "1"/,
	'after index changes and a re-created extension the session writes to the new outbox');
unlike($out . $err, qr/ERROR:/, 'no statement failed');

# PostgreSQL's own: uninitialised padding written to WAL
my ($ours, $other) = memcheck_judge([$log],
	qr/Syscall param pwrite64\(buf\) points to uninitialised byte\(s\).*XLog/s);
is(scalar(@$ours), 0, 'no memcheck error in mfgsync\'s code')
  or diag(join("\n----\n", @$ours));
is(scalar(@$other), 0, 'no memcheck error other than PostgreSQL\'s WAL padding')
  or diag(join("\n----\n", @$other));

done_testing();
