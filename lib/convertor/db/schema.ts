/**
 * DDL of the two dedup tables. The MySQL text matches upstream's sample
 * schema in columns, types and keys; SQLite gets the same columns and keys.
 */

export const MYSQL_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS \`overlaybd_layers\` (
  \`host\` varchar(255) NOT NULL,
  \`repo\` varchar(255) NOT NULL,
  \`chain_id\` varchar(255) NOT NULL COMMENT 'chain ID of the source layers up to this one',
  \`data_digest\` varchar(255) NOT NULL COMMENT 'digest of the overlaybd layer blob',
  \`data_size\` bigint(20) NOT NULL COMMENT 'size of the overlaybd layer blob',
  PRIMARY KEY (\`host\`,\`repo\`,\`chain_id\`),
  KEY \`index_registry_chainId\` (\`host\`,\`chain_id\`) USING BTREE
) DEFAULT CHARSET=utf8`,
  `CREATE TABLE IF NOT EXISTS \`overlaybd_manifests\` (
  \`host\` varchar(255) NOT NULL,
  \`repo\` varchar(255) NOT NULL,
  \`src_digest\` varchar(255) NOT NULL COMMENT 'digest of the source manifest',
  \`out_digest\` varchar(255) NOT NULL COMMENT 'digest of the converted manifest',
  \`data_size\` bigint(20) NOT NULL COMMENT 'size of the converted manifest',
  \`mediatype\` varchar(255) NOT NULL COMMENT 'media type of the converted manifest',
  PRIMARY KEY (\`host\`,\`repo\`,\`src_digest\`,\`mediatype\`),
  KEY \`index_registry_src_digest\` (\`host\`,\`src_digest\`,\`mediatype\`) USING BTREE
) DEFAULT CHARSET=utf8`,
];

export const SQLITE_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS overlaybd_layers (
  host TEXT NOT NULL,
  repo TEXT NOT NULL,
  chain_id TEXT NOT NULL,
  data_digest TEXT NOT NULL,
  data_size INTEGER NOT NULL,
  PRIMARY KEY (host, repo, chain_id)
)`,
  `CREATE INDEX IF NOT EXISTS index_registry_chainId ON overlaybd_layers (host, chain_id)`,
  `CREATE TABLE IF NOT EXISTS overlaybd_manifests (
  host TEXT NOT NULL,
  repo TEXT NOT NULL,
  src_digest TEXT NOT NULL,
  out_digest TEXT NOT NULL,
  data_size INTEGER NOT NULL,
  mediatype TEXT NOT NULL,
  PRIMARY KEY (host, repo, src_digest, mediatype)
)`,
  `CREATE INDEX IF NOT EXISTS index_registry_src_digest ON overlaybd_manifests (host, src_digest, mediatype)`,
];

/** Row shapes as the databases return them. */
export interface LayerRow {
  host: string;
  repo: string;
  chain_id: string;
  data_digest: string;
  data_size: number | bigint | string;
}

export interface ManifestRow {
  host: string;
  repo: string;
  src_digest: string;
  out_digest: string;
  data_size: number | bigint | string;
  mediatype: string;
}

export function layerFromRow(r: LayerRow) {
  return { host: r.host, repo: r.repo, chainId: r.chain_id, dataDigest: r.data_digest, dataSize: Number(r.data_size) };
}

export function manifestFromRow(r: ManifestRow) {
  return {
    host: r.host,
    repo: r.repo,
    srcDigest: r.src_digest,
    outDigest: r.out_digest,
    dataSize: Number(r.data_size),
    mediaType: r.mediatype,
  };
}
