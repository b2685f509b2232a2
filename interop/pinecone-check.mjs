// pinecone-check.mjs: read a `reembed export --format pinecone` directory with
// DuckDB and print, as one JSON object on stdout, what Pinecone's import
// would see (https://docs.pinecone.io/guides/index-data/import-data):
//
//   node interop/pinecone-check.mjs EXPORT_DIR/NAMESPACE
//
//   {"columns":[{"name":"id","type":"VARCHAR"},{"name":"values","type":"FLOAT[]"},
//               {"name":"metadata","type":"VARCHAR"}],
//    "rows": 123, "distinct_ids": 123, "dims": [1536], "bad_metadata": 0,
//    "row": {"id": "...", "values": [...], "metadata": "{...}"}}
//
// bad_metadata counts rows whose metadata is not a JSON object. Exit status 0
// when the files read, 1 on any error (message on stderr).
import { DuckDBInstance } from '@duckdb/node-api';

async function main() {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node pinecone-check.mjs EXPORT_DIR/NAMESPACE');
  const glob = dir.replace(/\/+$/, '') + '/*.parquet';
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    const src = `read_parquet($glob)`;
    const described = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${src}`, { glob });
    const columns = described.getRowObjectsJson().map((r) => ({ name: r.column_name, type: r.column_type }));
    const counts = await conn.runAndReadAll(
      `SELECT count(*)::INTEGER AS n, count(DISTINCT id)::INTEGER AS k,
              list(DISTINCT len("values"))::VARCHAR AS dims,
              count(*) FILTER (WHERE json_type(metadata::JSON) <> 'OBJECT')::INTEGER AS bad
       FROM ${src}`, { glob });
    const [{ n, k, dims, bad }] = counts.getRowObjectsJson();
    const first = await conn.runAndReadAll(`SELECT * FROM ${src} ORDER BY id LIMIT 1`, { glob });
    const [row] = first.getRowObjectsJson();
    process.stdout.write(JSON.stringify({ columns, rows: n, distinct_ids: k, dims, bad_metadata: bad, row: row ?? null }) + '\n');
  } finally {
    conn.closeSync();
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack || err) + '\n');
  process.exit(1);
});
