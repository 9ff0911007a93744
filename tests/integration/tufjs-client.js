// SPDX-License-Identifier: LGPL-2.1-or-later
// A second, independent TUF client for test_repo.py: tuf-js (npm) reading a repository that
// `updatectl repo` made. Usage:
//   node tufjs-client.js METADATA_DIR METADATA_URL TARGET_DIR TARGET_URL [TARGET_NAME]
// METADATA_DIR holds the trusted root.json. Refreshes, then prints one JSON line: the trusted versions
// and, with TARGET_NAME, the target's info (length, custom) after downloading it into TARGET_DIR.
// Exit status 1 with the error on stderr when tuf-js refuses.
'use strict';

const path = require('path');
const { Updater } = require('tuf-js');

async function main() {
  const [metadataDir, metadataBaseUrl, targetDir, targetBaseUrl, name] = process.argv.slice(2);
  const updater = new Updater({ metadataDir, metadataBaseUrl, targetDir, targetBaseUrl });
  await updater.refresh();
  const fs = require('fs');
  const versions = {};
  for (const role of ['root', 'timestamp', 'snapshot', 'targets']) {
    const p = path.join(metadataDir, `${role}.json`);
    versions[role] = JSON.parse(fs.readFileSync(p, 'utf8')).signed.version;
  }
  const out = { versions };
  if (name) {
    const info = await updater.getTargetInfo(name);
    if (!info) {
      throw new Error(`no target ${name}`);
    }
    const file = path.join(targetDir, name);
    await updater.downloadTarget(info, file);
    out.target = { path: info.path, length: info.length, custom: info.custom, file };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.name}: ${e.message}\n`);
  process.exit(1);
});
