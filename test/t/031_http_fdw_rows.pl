# test/t/031_http_fdw_rows.pl - how mfgsync_http reads a row's values from
# its JSON bytes: string escapes and \u surrogate pairs, escaped keys,
# nested objects and arrays skipped, deeper paths, numbers with exponents,
# white space everywhere, literals, containers as text, the ISO 8601
# date-time shortcut (it must agree with timestamptz input, also for what
# it leaves to it), and malformed rows failing with their byte offset.
# Pages are static files served by a small Python server on 127.0.0.1.
use strict;
use warnings;
use File::Basename;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use lib dirname(__FILE__);
use MfgTest;

my $www = PostgreSQL::Test::Utils::tempdir('www');
my $port = start_file_server($www);

# page(name, bytes): a document the server returns for /name
sub page
{
	my ($name, $body) = @_;
	open my $fh, '>:raw', "$www/$name" or die $!;
	print $fh $body;
	close $fh;
}

my $node = mfg_cluster('rows');
# a UTF8 database whatever the cluster's default
$node->safe_psql('postgres',
	"CREATE DATABASE u TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'");
$node->safe_psql('u', qq{
CREATE EXTENSION mfgsync;
CREATE SERVER files FOREIGN DATA WRAPPER mfgsync_http
  OPTIONS (base_url 'http://127.0.0.1:$port', retries '0');
});
sub psql_u { return $node->safe_psql('u', $_[0]); }

# table(name, page, columns): a foreign table over one page
sub table
{
	my ($name, $page, $cols) = @_;
	psql_u("CREATE FOREIGN TABLE $name ($cols) SERVER files OPTIONS (path '/$page')");
}

# fails(sql, regex, name): the query fails with a message matching regex
sub fails
{
	my ($sql, $re, $name) = @_;
	my ($ret, $out, $err) = $node->psql('u', $sql);
	isnt($ret, 0, "$name: fails");
	like($err, $re, "$name: message");
}

# --- strings: every escape, \u with a surrogate pair, raw UTF-8
page('esc.json', '[{"s":"q\"b\\\\s\/d\b\f\n\r\tE\u00e9\ud83d\ude00\u20ac","r":"' .
	"\xc3\xa9\xe2\x82\xac" . '"}]');
table('esc', 'esc.json', 's text, r text, sj jsonb OPTIONS (path \'s\')');
is(psql_u("SELECT encode(convert_to(s, 'UTF8'), 'hex'), encode(convert_to(r, 'UTF8'), 'hex') FROM esc"),
	unpack('H*', "q\"b\\s/d\b\f\n\r\tE\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac") . '|'
	  . unpack('H*', "\xc3\xa9\xe2\x82\xac"),
	'string escapes and surrogate pairs unescaped to UTF-8');
is(psql_u("SELECT sj #>> '{}' = s FROM esc"), 't', 'a jsonb column gets the string as JSON');

# --- keys: escaped, duplicated; nested values skipped; deeper paths
page('keys.json', '[{"c\u006fde":"K1","skip":{"a":[1,{"b":"}]\"{["}],"code":"no"},'
	. '"ops":[{"step":10},{"step":20,"m":{"id":"M-2"}}],"dup":1,"dup":2,'
	. '"arr":[[1,2],[3,[4,5]]]}]');
table('keys', 'keys.json',
	'code text, dup int, step2 int OPTIONS (path \'ops[1].step\'), '
	  . 'm text OPTIONS (path \'ops[1].m.id\'), deep int OPTIONS (path \'arr[1][1][0]\'), '
	  . 'missing text OPTIONS (path \'ops[5].step\'), notobj text OPTIONS (path \'code.x\'), '
	  . 'skip text, ops jsonb');
is(psql_u('SELECT code, dup, step2, m, deep, missing IS NULL, notobj IS NULL FROM keys'),
	'K1|2|20|M-2|4|t|t',
	'escaped key, last duplicate wins, deeper paths, absent paths are NULL');
is(psql_u('SELECT skip, ops FROM keys'),
	'{"a":[1,{"b":"}]\"{["}],"code":"no"}|[{"step": 10}, {"m": {"id": "M-2"}, "step": 20}]',
	'nested values as text without white space, and as jsonb');

# --- numbers, literals, white space
page('num.json', qq| [ \n { "i" : -0 , "d":-1.5e3,"e":2E-2, "p": 1.25e+2 ,"big":123456789012345678901234567890,\r\n|
	. qq|\t"t":true,"f":false,"n":null, "o" : { "a" : [ 1 , 2 ] } } ,\n{"i":7} \n] \n|);
table('num', 'num.json',
	'i int, d numeric, e text, p float8, big numeric, t boolean, f boolean, n text, o text, absent int');
is(psql_u('SELECT i, d, e, p, big, t, f, n IS NULL, o, absent IS NULL FROM num ORDER BY i'),
	"0|-1500|2E-2|125|123456789012345678901234567890|t|f|t|{\"a\":[1,2]}|t\n7|||||||t||t",
	'numbers keep their text, literals, null, white space everywhere');

# --- rows cut off by the end of what has arrived are read once complete
page('big.json', '[' . join(',', map { qq({"i":$_,"s":") . ('x' x 300_000) . qq(\\u00e9","o":{"k":"v$_"}}) } 1 .. 3) . ']');
table('big', 'big.json', 'i int, s text, k text OPTIONS (path \'o.k\')');
is(psql_u("SELECT string_agg(i || ':' || length(s) || ':' || right(s, 2) || ':' || k, ',' ORDER BY i) FROM big"),
	"1:300001:x\xc3\xa9:v1,2:300001:x\xc3\xa9:v2,3:300001:x\xc3\xa9:v3",
	'rows larger than a network read');

# network reads end inside escapes, surrogate pairs and literals
page('many.json', '[' . join(',', map { qq({"i":$_,"s":"\\ud83d\\ude00\\u00e9\\n","t":true}) } 1 .. 20000) . ']');
table('many', 'many.json', 'i int, s text, t boolean');
is(psql_u("SELECT count(*), sum(i), count(DISTINCT s), bool_and(t), min(encode(convert_to(s, 'UTF8'), 'hex')) FROM many"),
	'20000|200010000|1|t|' . unpack('H*', "\xf0\x9f\x98\x80\xc3\xa9\n"),
	'rows cut off anywhere by network reads');

# --- date-times: the shortcut agrees with timestamptz input
my @ts = ('2024-02-29T23:59:59.123456Z', '2024-03-01T01:02:03+05:30',
	'2024-03-01 01:02:03-08:00', '2024-03-01T01:02:03.5Z', '0001-01-01T00:00:00Z',
	'2024-12-31T23:59:59-00:00', '2024-03-01T24:00:00Z', '2016-12-31T23:59:60Z',
	'2024-03-01T01:02:03.1234567Z', '2024-03-01T01:02:03', '2024-03-01T01:02:03+0530',
	'2024-03-01', 'epoch', '1999-01-08 04:05:06 PST');
page('ts.json', '[' . join(',', map { qq({"t":"$_"}) } @ts) . ']');
table('ts', 'ts.json', 'ts timestamptz OPTIONS (path \'t\'), tt text OPTIONS (path \'t\')');
is($node->safe_psql('u', q{SET timezone = 'Asia/Kolkata';
	SELECT count(*), count(*) FILTER (WHERE ts IS NOT DISTINCT FROM tt::timestamptz) FROM ts}),
	scalar(@ts) . '|' . scalar(@ts),
	'every date-time equals its text cast to timestamptz');
is(psql_u(q{SELECT ts FROM ts LIMIT 1}), '2024-02-29 23:59:59.123456+00',
	'fractional seconds kept');
page('badts.json', '[{"t":"2024-01-01T00:00:00Z"},{"t":"2023-02-29T00:00:00Z"}]');
table('badts', 'badts.json', 'ts timestamptz OPTIONS (path \'t\')');
fails('SELECT count(ts) FROM badts',
	qr/date\/time field value out of range: "2023-02-29T00:00:00Z"\n.*CONTEXT:  column "ts" of row 2 from server "files", value "2023-02-29T00:00:00Z"/s,
	'February 29th of a common year');

# --- malformed rows: the byte offset of the fault in the page
my @bad = (
	[ '[{"a":1,}]',        8,  'Expected a key',       'trailing comma' ],
	[ '[{"a":01}]',        7,  'Expected ",".*"}"',    'leading zero' ],
	[ '[{"a":1.}]',        8,  'digits must follow the decimal point', 'bare decimal point' ],
	[ '[{"a":1e}]',        8,  'digits must follow the exponent', 'bare exponent' ],
	[ '[{"a":"x\\qy"}]',   8,  'Invalid escape',       'unknown escape' ],
	[ '[{"a":"\\ud800x"}]', 7, 'high surrogate',       'lone high surrogate' ],
	[ '[{"a":"\\udc00"}]', 7,  'low surrogate',        'lone low surrogate' ],
	[ '[{"a":"\\u12g4"}]', 7,  'four hex digits',      'short \u escape' ],
	[ "[{\"a\":\"x\ty\"}]", 8, 'control character',    'raw tab in a string' ],
	[ '[{"a":tru}]',       6,  'Expected a value',     'bad literal' ],
	[ '[{"a" 1}]',         6,  'Expected ":"',         'missing colon' ],
	[ '[{"a":[1 2]}]',     9,  'Expected ",".*"]"',    'missing comma in an array' ],
	[ "[{\"a\":\"\xff\"}]", 7, 'not valid UTF8',       'invalid UTF-8' ],
	[ '[{"a":1},{"a":2 "b":3}]', 16, 'Expected ",".*"}"', 'second row' ],
);
my $i = 0;
for my $b (@bad)
{
	my ($doc, $off, $detail, $name) = @$b;
	$i++;
	page("bad$i.json", $doc);
	table("bad$i", "bad$i.json", 'a text');
	fails("SELECT count(a) FROM bad$i",
		qr/malformed JSON from server "files" at byte offset $off\nDETAIL:  .*$detail/,
		"malformed: $name");
}
# a row that is malformed deep inside a value no column maps
page('deep.json', '[{"a":1,"x":{"y":[1,{"z":nul}]}}]');
table('deep', 'deep.json', 'a int');
fails('SELECT count(a) FROM deep', qr/at byte offset 25\nDETAIL:  Expected a value/,
	'malformed inside an unmapped value');

# \u0000 has no text form; jsonb rejects it too
page('nul.json', '[{"a":"x\u0000y"}]');
table('nul', 'nul.json', 'a text');
fails('SELECT a FROM nul',
	qr/unsupported Unicode escape sequence\nDETAIL:  \\u0000 cannot be converted to text\.\nCONTEXT:  column "a" of row 1/,
	'\u0000 into text');
table('nulj', 'nul.json', 'a jsonb');
fails('SELECT a FROM nulj', qr/unsupported Unicode escape sequence/, '\u0000 into jsonb');

$node->stop;
done_testing();
