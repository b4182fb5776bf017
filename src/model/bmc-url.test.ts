import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { formatBmcUrl, parseBmcUrl, redactBmcUrl } from './bmc-url.ts';

test('ipmi, redfish and redfish+http URLs with their default ports', () => {
  assert.deepEqual(parseBmcUrl('ipmi://admin:s3cret@10.0.0.5'), {
    protocol: 'ipmi',
    host: '10.0.0.5',
    port: 623,
    username: 'admin',
    password: 's3cret',
  });
  assert.deepEqual(parseBmcUrl('redfish://root:calvin@BMC-1.Example.com:8443/?insecure=1'), {
    protocol: 'redfish',
    scheme: 'https',
    host: 'bmc-1.example.com',
    port: 8443,
    username: 'root',
    password: 'calvin',
    insecure: true,
  });
  const http = parseBmcUrl('redfish+http://u:p@[fd00::1]');
  assert.equal(http.scheme, 'http');
  assert.equal(http.port, 80);
  assert.equal(http.host, 'fd00::1');
  assert.equal(parseBmcUrl('redfish://u:p@bmc').port, 443);
});

test('user and password are percent-decoded; a password may hold ":"', () => {
  const a = parseBmcUrl('ipmi://us%40er:p%3Ass:w%2Fd@127.0.0.1:6230');
  assert.equal(a.username, 'us@er');
  assert.equal(a.password, 'p:ss:w/d');
  assert.equal(a.port, 6230);
  assert.deepEqual(parseBmcUrl(formatBmcUrl(a)), a);
});

test('what the grammar refuses, with a message that never holds the password', () => {
  const bad: [string, RegExp][] = [
    ['http://u:hunter2@h', /scheme/],
    ['ipmi://hunter2@h', /no password/],
    ['ipmi://h:623', /no user name/],
    ['ipmi://:hunter2@h', /user name is empty/],
    ['ipmi://u:@h', /password is empty/],
    ['ipmi://u:hunter2%0A@h', /control character/],
    ['ipmi://u:hunter2%zz@h', /percent-escape|percent-encoded/],
    ['ipmi://u:hunter2%E0%A4%A@h', /percent-escape|percent-encoded/],
    ['ipmi://u:hun ter2@h', /percent-encoded/],
    ['ipmi://u:hunter2@h@h', /percent-encoded/],
    ['ipmi://u:hunter2/x@h', /expected/],
    ['ipmi://u:hunter2@h:0', /port/],
    ['ipmi://u:hunter2@h:65536', /port/],
    ['ipmi://u:hunter2@h:x', /port/],
    ['ipmi://u:hunter2@h:', /port/],
    ['ipmi://u:hunter2@', /no host/],
    ['ipmi://u:hunter2@1.2.3.256', /IPv4/],
    ['ipmi://u:hunter2@[fd00::zz]', /IPv6/],
    ['ipmi://u:hunter2@fd00::1', /host/],
    ['ipmi://u:hunter2@-bad.example', /DNS name/],
    ['ipmi://u:hunter2@a_b', /DNS name/],
    ['ipmi://u:hunter2@host.123', /DNS name/],
    ['ipmi://seventeen-chars-xx:hunter2@h', /user name is longer than 16 bytes/],
    ['ipmi://u:hunter2hunter2hunter2@h', /password is longer than 20 bytes/],
    ['ipmi://u:hunter2@h?insecure=1', /https/],
    ['redfish+http://u:hunter2@h?insecure=1', /https/],
    ['redfish://u:hunter2@h?x=1', /query parameter/],
    ['redfish://u:hunter2@h/redfish/v1', /expected/],
    [`redfish://u:hunter2@${'a'.repeat(600)}`, /longer than 512/],
  ];
  for (const [url, why] of bad) {
    assert.throws(
      () => parseBmcUrl(url),
      (e: Error) => {
        assert.match(e.message, why, url);
        assert.doesNotMatch(e.message, /hunter2/, url);
        return true;
      },
    );
  }
  // Redfish has no IPMI length limits.
  assert.equal(parseBmcUrl('redfish://seventeen-chars-xx:hunter2hunter2hunter2@h').username, 'seventeen-chars-xx');
});

test('redaction replaces the whole password, also in a URL that does not parse', () => {
  assert.equal(redactBmcUrl('ipmi://admin:s3cret@10.0.0.5:623'), 'ipmi://admin:***@10.0.0.5:623');
  assert.equal(redactBmcUrl('redfish://u:p@ss@w0rd@bmc?insecure=1'), 'redfish://u:***@bmc?insecure=1');
  assert.equal(redactBmcUrl('ipmi://10.0.0.5'), 'ipmi://10.0.0.5');
});
