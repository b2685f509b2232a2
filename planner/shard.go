package planner

import "hash/fnv"

// ShardOf returns the shard, in [0, count), that owns a document: FNV-1a 64
// of the doc_id (its UTF-8 bytes) modulo count. The hash is stable across
// machines, versions and runs, so every shard process agrees on the split.
func ShardOf(docID string, count int) int {
	if count <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(docID))
	return int(h.Sum64() % uint64(count))
}
