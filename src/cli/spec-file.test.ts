import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { diffLines, givenDiffers, parseSpecFile, type SpecFileError } from './spec-file.ts';

const file = `# two documents
apiVersion: strata/v1
kind: Deployment
metadata:
  name: web
  labels: {tier: web}
spec:
  replicas: 3
  template:
    kind: container
    image: busybox
    resources:
      vcpus: 0
---
apiVersion: strata/v1
kind: Instance
metadata: {name: db, project: data}
spec:
  kind: container
  image: postgres:16
---
`;

test('documents become API bodies; an API field is found at its line and column', () => {
  const [web, db, ...rest] = parseSpecFile(file, 'app.yaml');
  assert.equal(rest.length, 0, 'an empty document holds nothing');
  assert.equal(web!.kind, 'Deployment');
  assert.equal(web!.name, 'web');
  assert.equal(web!.project, undefined);
  assert.deepEqual(web!.labels, { tier: 'web' });
  assert.deepEqual(web!.spec, {
    replicas: 3,
    template: { kind: 'container', image: 'busybox', resources: { vcpus: 0 } },
  });
  assert.equal(web!.where, 'app.yaml:5:9');
  assert.equal(web!.locate('body.template.resources.vcpus'), 'app.yaml:13:14');
  assert.equal(web!.pathOf('body.template.resources.vcpus'), 'spec.template.resources.vcpus');
  assert.equal(web!.locate('body.labels'), 'app.yaml:6:11');
  assert.equal(web!.locate('body.name'), 'app.yaml:5:9');
  // A field the file does not have: the nearest one it has.
  assert.equal(web!.locate('body.template.healthCheck.port'), 'app.yaml:10:5');
  assert.equal(web!.locate('body.template', 'has unknown field "imag"'), 'app.yaml:10:5');
  assert.equal(db!.project, 'data');
  assert.equal(db!.locate('body.image'), 'app.yaml:20:10');
});

test('an unknown field the API names is found at its key', () => {
  const [d] = parseSpecFile(
    'apiVersion: strata/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  template:\n    kind: container\n    imag: busybox\n',
    'x.yaml',
  );
  assert.equal(d!.locate('body.template', 'has unknown field "imag"'), 'x.yaml:8:5');
});

test('what is wrong with a document is said at its place, all of it, and nothing is returned', () => {
  const bad = `apiVersion: strata/v2
kind: Deploymnet
metadata:
  name: web
  owner: me
spec:
  name: web
  replicas: 1
extra: 1
---
apiVersion: strata/v1
kind: Instance
metadata: {}
spec: []
`;
  assert.throws(
    () => parseSpecFile(bad, 'bad.yaml'),
    (err: SpecFileError) => {
      assert.deepEqual(
        err.problems.map(p => `${p.where}: ${p.message}`),
        [
          'bad.yaml:9:1: unknown field "extra" (a document has apiVersion, kind, metadata, spec)',
          'bad.yaml:1:13: apiVersion must be strata/v1',
          'bad.yaml:2:7: kind must be Deployment or Instance',
          'bad.yaml:5:3: unknown field "owner" (metadata has name, project, labels)',
          'bad.yaml:7:3: name goes in metadata.name, not in spec',
          'bad.yaml:13:11: metadata.name must be a name',
          "bad.yaml:14:7: spec must be a mapping: the Instance's spec",
        ],
      );
      return true;
    },
  );
  assert.throws(() => parseSpecFile('a: [1, 2\n', 'y.yaml'), /y\.yaml:\d+:\d+: /);
  const twice = 'apiVersion: strata/v1\nkind: Instance\nmetadata: {name: a}\nspec: {kind: container, image: x}\n';
  assert.throws(
    () => parseSpecFile(`${twice}---\n${twice}`, 'z.yaml'),
    /z\.yaml:8:18: Instance a is also given at z\.yaml:3:18/,
  );
});

test('diffs: every field that changes, and given fields against stored ones', () => {
  assert.deepEqual(
    diffLines(
      { replicas: 3, template: { image: 'a', command: ['sh'] }, labels: { x: '1' } },
      { replicas: 1, template: { image: 'b', command: ['sh'] }, labels: {} },
      'spec',
    ),
    ['spec.labels: (none) → {}', 'spec.labels.x: 1 → (none)', 'spec.replicas: 3 → 1', 'spec.template.image: a → b'],
  );
  const stored = { image: 'a', resources: { vcpus: 1, memoryMib: 256, diskGib: 0 }, pidsLimit: 4096 };
  assert.deepEqual(givenDiffers({ image: 'a', resources: { vcpus: 1 } }, stored, 'spec'), []);
  assert.deepEqual(givenDiffers({ image: 'b', resources: { vcpus: 2 } }, stored, 'spec'), [
    'spec.image: a → b',
    'spec.resources.vcpus: 1 → 2',
  ]);
});
