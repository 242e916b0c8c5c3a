// Starts s3rver 3.7.1 for the tests and the benchmarks, with its filesystem store's listObjects
// replaced, and prints "listening on HOST:PORT" once it accepts connections.
//
//   node s3rver_start.js PREFIX DIRECTORY ADDRESS PORT [BUCKET ...]
//
// PREFIX is where `npm install --prefix PREFIX s3rver@3.7.1` installed it; PORT 0 picks a free one.
// Besides its own key pair S3RVER/S3RVER, it accepts the pairs S3RVER_KEY_PAIRS lists
// ("ACCESS:SECRET" separated by newlines), with their signatures checked as for its own.
// s3rver 3.7.1 walks its folder tree pruning every folder below a '/'-delimited common prefix before
// it has seen an object in it, so `dataset/` is listed only when an object sits directly in it; it
// also pages in folder order, not in S3's byte order of keys. The listing below collects the keys
// under the prefix, sorts them as S3 does and pages through them.
'use strict';

const path = require('path');

const [prefix, directory, address, port, ...buckets] = process.argv.slice(2);
const here = path.join(path.resolve(prefix), 'node_modules', 's3rver');
const S3rver = require(here);
const FilesystemStore = require(path.join(here, 'lib', 'stores', 'filesystem'));
const S3Object = require(path.join(here, 'lib', 'models', 'object'));
const { walk } = require(path.join(here, 'lib', 'utils'));
const { DUMMY_ACCOUNT } = require(path.join(here, 'lib', 'models', 'account'));

for (const pair of (process.env.S3RVER_KEY_PAIRS || '').split('\n').filter(Boolean)) {
  const cut = pair.indexOf(':');
  DUMMY_ACCOUNT.createKeyPair(pair.slice(0, cut), pair.slice(cut + 1));
}

const OBJECT_SUFFIX = '._S3rver_object';

function compare(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  const { delimiter = '', startAfter = '', prefix: keyPrefix = '', maxKeys = Infinity } = options;
  const bucketPath = this.getBucketPath(bucket);
  const below = (dirPath) => FilesystemStore.decodeKeyPath(dirPath.slice(bucketPath.length + 1)) + '/';
  const folders = (dirPath) => {
    const folder = below(dirPath);
    return folder.startsWith(keyPrefix) || keyPrefix.startsWith(folder);
  };
  const keys = [];
  for (const keyPath of walk(bucketPath, folders)) {
    if (!keyPath.endsWith(OBJECT_SUFFIX)) continue;
    const key = FilesystemStore.decodeKeyPath(keyPath.slice(bucketPath.length + 1, -OBJECT_SUFFIX.length));
    if (key.startsWith(keyPrefix) && compare(key, startAfter) > 0) keys.push(key);
  }
  keys.sort(compare);
  const commonPrefixes = new Set();
  const page = [];
  let isTruncated = false;
  for (const key of keys) {
    if (page.length >= maxKeys) {
      isTruncated = true; // the next page starts after the last key of this one
      break;
    }
    const cut = delimiter ? key.indexOf(delimiter, keyPrefix.length) : -1;
    if (cut !== -1) {
      commonPrefixes.add(key.slice(0, cut + delimiter.length));
    } else {
      page.push(key);
    }
  }
  const metadata = await Promise.all(
    page.map((key) =>
      this.getMetadata(bucket, key).catch((err) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      }),
    ),
  );
  return {
    objects: page
      .map((key, index) => [key, metadata[index]])
      .filter(([, found]) => found !== undefined)
      .map(([key, found]) => new S3Object(bucket, key, null, found)),
    commonPrefixes: [...commonPrefixes].sort(compare),
    isTruncated,
  };
};

new S3rver({
  directory,
  address,
  port: Number(port),
  silent: true,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
})
  .run()
  .then(({ address: host, port: bound }) => console.log(`listening on ${host}:${bound}`))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
