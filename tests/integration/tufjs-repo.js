// SPDX-License-Identifier: LGPL-2.1-or-later
// The other direction of test_repo.py's interoperability tests: a TUF repository written by tuf-js's
// own metadata classes (@tufjs/models, signed with node's crypto), for our client and upkeepd to read.
// Usage:
//   node tufjs-repo.js OUT_DIR KEY_TYPE TARGET_FILE CUSTOM_JSON
// KEY_TYPE is ed25519, ecdsa or rsa (keys of every role). Writes OUT_DIR/metadata (consistent snapshots:
// 1.root.json, root.json, 1.targets.json, 1.products.json, 1.snapshot.json, timestamp.json) and
// OUT_DIR/targets/SHA256.NAME. The top-level targets delegate "acme-*" to role "products", which lists
// the target with CUSTOM_JSON as its custom.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { canonicalize } = require('@tufjs/canonical-json');
const models = require('@tufjs/models');

const SPEC = '1.0.31';
const EXPIRES = new Date(Date.now() + 30 * 86400 * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

function makeKey(type) {
  let pair, keyType, scheme, pub;
  if (type === 'ed25519') {
    pair = crypto.generateKeyPairSync('ed25519');
    // the raw 32 bytes are the end of the SPKI DER
    pub = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
    keyType = scheme = 'ed25519';
  } else if (type === 'ecdsa') {
    pair = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    pub = pair.publicKey.export({ format: 'pem', type: 'spki' });
    keyType = 'ecdsa';
    scheme = 'ecdsa-sha2-nistp256';
  } else if (type === 'rsa') {
    pair = crypto.generateKeyPairSync('rsa', { modulusLength: 3072 });
    pub = pair.publicKey.export({ format: 'pem', type: 'spki' });
    keyType = 'rsa';
    scheme = 'rsassa-pss-sha256';
  } else {
    throw new Error(`unknown key type ${type}`);
  }
  const body = { keytype: keyType, scheme, keyval: { public: pub } };
  const keyID = crypto.createHash('sha256').update(canonicalize(body)).digest('hex');
  const key = new models.Key({ keyID, keyType, scheme, keyVal: { public: pub } });
  const signer = (bytes) => {
    let sig;
    if (type === 'ed25519') sig = crypto.sign(null, bytes, pair.privateKey);
    else if (type === 'ecdsa') sig = crypto.sign('sha256', bytes, pair.privateKey);
    else
      sig = crypto.sign('sha256', bytes, {
        key: pair.privateKey,
        padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
        saltLength: 32,
      });
    return new models.Signature({ keyID, sig: sig.toString('hex') });
  };
  return { key, signer };
}

function write(dir, name, metadata) {
  const bytes = Buffer.from(JSON.stringify(metadata.toJSON()));
  fs.writeFileSync(path.join(dir, name), bytes);
  return bytes;
}

function main() {
  const [out, type, targetFile, customJson] = process.argv.slice(2);
  const md = path.join(out, 'metadata');
  const tg = path.join(out, 'targets');
  fs.mkdirSync(md, { recursive: true });
  fs.mkdirSync(tg, { recursive: true });
  const keys = {};
  for (const role of ['root', 'targets', 'snapshot', 'timestamp', 'products']) keys[role] = makeKey(type);

  const root = new models.Root({ version: 1, specVersion: SPEC, expires: EXPIRES, consistentSnapshot: true });
  for (const role of ['root', 'targets', 'snapshot', 'timestamp']) root.addKey(keys[role].key, role);
  const rootMd = new models.Metadata(root);
  rootMd.sign(keys.root.signer);
  write(md, '1.root.json', rootMd);
  write(md, 'root.json', rootMd);

  const data = fs.readFileSync(targetFile);
  const sha256 = crypto.createHash('sha256').update(data).digest('hex');
  const name = path.basename(targetFile);
  fs.copyFileSync(targetFile, path.join(tg, `${sha256}.${name}`));
  const target = new models.TargetFile({
    path: name,
    length: data.length,
    hashes: { sha256 },
    unrecognizedFields: { custom: JSON.parse(customJson) },
  });
  const products = new models.Metadata(
    new models.Targets({ version: 1, specVersion: SPEC, expires: EXPIRES, targets: { [name]: target } }),
  );
  products.sign(keys.products.signer);
  write(md, '1.products.json', products);

  // Delegations and DelegatedRole are not exported: the targets come from their JSON form, parsed and
  // checked by Targets.fromJSON().
  const targets = new models.Metadata(
    models.Targets.fromJSON({
      _type: 'targets',
      spec_version: SPEC,
      version: 1,
      expires: EXPIRES,
      targets: {},
      delegations: {
        keys: { [keys.products.key.keyID]: keys.products.key.toJSON() },
        roles: [
          {
            name: 'products',
            keyids: [keys.products.key.keyID],
            threshold: 1,
            terminating: true,
            paths: ['acme-*'],
          },
        ],
      },
    }),
  );
  targets.sign(keys.targets.signer);
  write(md, '1.targets.json', targets);

  const snapshot = new models.Metadata(
    new models.Snapshot({
      version: 1,
      specVersion: SPEC,
      expires: EXPIRES,
      meta: {
        'targets.json': new models.MetaFile({ version: 1 }),
        'products.json': new models.MetaFile({ version: 1 }),
      },
    }),
  );
  snapshot.sign(keys.snapshot.signer);
  const snapBytes = write(md, '1.snapshot.json', snapshot);

  const timestamp = new models.Metadata(
    new models.Timestamp({
      version: 1,
      specVersion: SPEC,
      expires: EXPIRES,
      snapshotMeta: new models.MetaFile({
        version: 1,
        length: snapBytes.length,
        hashes: { sha256: crypto.createHash('sha256').update(snapBytes).digest('hex') },
      }),
    }),
  );
  timestamp.sign(keys.timestamp.signer);
  write(md, 'timestamp.json', timestamp);
}

main();
