package pgvector

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/reembed/reembed/checkpoint"
	"github.com/reembed/reembed/store"
)

var _ store.Reader = (*Sink)(nil)

// Attach points a sink at an existing table for reading (verify), without
// creating anything: it reads the embedding column's type and dimensions.
func (s *Sink) Attach(ctx context.Context, metric string) error {
	s.load, s.metric = s.table, metric
	var typ string
	err := s.conn.QueryRow(ctx, `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attname = 'embedding' AND NOT attisdropped`, s.qualified(s.table)).Scan(&typ)
	if err != nil {
		return s.scrub(fmt.Errorf("reading the embedding column of %s: %w", s.ident(s.table), err))
	}
	name, dims, ok := strings.Cut(strings.TrimSuffix(typ, ")"), "(")
	n, err := strconv.Atoi(dims)
	if !ok || err != nil || (name != "vector" && name != "halfvec") {
		return fmt.Errorf("%s.embedding is %s: want vector(N) or halfvec(N)", s.ident(s.table), typ)
	}
	s.dims, s.half = n, name == "halfvec"
	return nil
}

// Half reports whether the embedding column is halfvec (elements rounded to binary16).
func (s *Sink) Half() bool { return s.half }

// Keys calls fn for every row's key and chunk_sha256.
func (s *Sink) Keys(ctx context.Context, fn func(checkpoint.Key, string) error) error {
	rows, err := s.conn.Query(ctx, "SELECT doc_id, chunk_index, chunk_sha256 FROM "+s.ident(s.load))
	if err != nil {
		return s.scrub(fmt.Errorf("reading keys: %w", err))
	}
	defer rows.Close()
	var k checkpoint.Key
	var sha string
	_, err = pgx.ForEachRow(rows, []any{&k.DocID, &k.ChunkIndex, &sha}, func() error { return fn(k, sha) })
	if err != nil {
		return s.scrub(fmt.Errorf("reading keys: %w", err))
	}
	return nil
}

// Vectors returns the stored vectors of keys, as float32 (halfvec elements widened exactly).
func (s *Sink) Vectors(ctx context.Context, keys []checkpoint.Key) (map[checkpoint.Key][]float32, error) {
	docs := make([]string, len(keys))
	idx := make([]int32, len(keys))
	for i, k := range keys {
		docs[i], idx[i] = k.DocID, k.ChunkIndex
	}
	rows, err := s.conn.Query(ctx, "SELECT t.doc_id, t.chunk_index, t.embedding::vector::real[] FROM "+s.ident(s.load)+
		" t JOIN unnest($1::text[], $2::int[]) AS k(d, i) ON t.doc_id = k.d AND t.chunk_index = k.i", docs, idx)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("reading vectors: %w", err))
	}
	out := make(map[checkpoint.Key][]float32, len(keys))
	var k checkpoint.Key
	var v []float32
	_, err = pgx.ForEachRow(rows, []any{&k.DocID, &k.ChunkIndex, &v}, func() error {
		out[k] = v
		v = nil
		return nil
	})
	if err != nil {
		return nil, s.scrub(fmt.Errorf("reading vectors: %w", err))
	}
	return out, nil
}

// Nearest returns the key of the row nearest to v by the metric, through the index when there is one.
func (s *Sink) Nearest(ctx context.Context, v []float32) (checkpoint.Key, error) {
	var k checkpoint.Key
	q := fmt.Sprintf("SELECT doc_id, chunk_index FROM %s ORDER BY embedding %s $1::real[]::%s(%d) LIMIT 1",
		s.ident(s.load), operator(s.metric), s.vectorType(), s.dims)
	if err := s.conn.QueryRow(ctx, q, v).Scan(&k.DocID, &k.ChunkIndex); err != nil {
		return k, s.scrub(fmt.Errorf("querying the nearest row: %w", err))
	}
	return k, nil
}
