package pgvector

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// referenceCopy is the binary COPY stream written field by field, straight
// from PostgreSQL's documented format (COPY ... FORMAT binary: signature,
// flags, extension; per tuple an int16 field count and each field as int32
// length + bytes; int16 -1 trailer) and pgvector's vector_send/halfvec_send.
func referenceCopy(rows []checkpoint.Row, half bool) []byte {
	var out bytes.Buffer
	out.WriteString("PGCOPY\n\xff\r\n\x00")
	binary.Write(&out, binary.BigEndian, int32(0))
	binary.Write(&out, binary.BigEndian, int32(0))
	field := func(b []byte) { binary.Write(&out, binary.BigEndian, int32(len(b))); out.Write(b) }
	for _, r := range rows {
		binary.Write(&out, binary.BigEndian, int16(7))
		field([]byte(r.DocID))
		field(binary.BigEndian.AppendUint32(nil, uint32(r.ChunkIndex)))
		field([]byte(r.ChunkSHA256))
		field([]byte(r.Text))
		field([]byte(r.Model))
		field(binary.BigEndian.AppendUint64(nil, uint64(r.EmbeddedAt.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds())))
		v := binary.BigEndian.AppendUint16(nil, uint16(len(r.Embedding)))
		v = binary.BigEndian.AppendUint16(v, 0)
		for _, f := range r.Embedding {
			if half {
				v = binary.BigEndian.AppendUint16(v, Float16(f))
			} else {
				v = binary.BigEndian.AppendUint32(v, math.Float32bits(f))
			}
		}
		field(v)
	}
	binary.Write(&out, binary.BigEndian, int16(-1))
	return out.Bytes()
}

// TestEncodeCopyMatchesTheFormat: encodeCopy's one-allocation stream is
// byte for byte the documented format, for vector and halfvec, for no rows,
// empty strings and multi-byte text; and appends to what buf holds.
func TestEncodeCopyMatchesTheFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rows []checkpoint.Row
	for i := range 50 {
		vec := make([]float32, 1+rng.IntN(40))
		for j := range vec {
			vec[j] = float32(rng.NormFloat64())
		}
		rows = append(rows, checkpoint.Row{
			DocID: strings.Repeat("d", i%3) + "é/☃", ChunkIndex: int32(i * 7), ChunkSHA256: strings.Repeat("ab", 32),
			Text: strings.Repeat("text ", rng.IntN(100)), Model: "text-embedding-3-small",
			EmbeddedAt: time.Date(2026, 12, 3, 1, 2, 3, i*1000, time.UTC), Embedding: vec,
		})
	}
	for _, half := range []bool{false, true} {
		for _, n := range []int{0, 1, len(rows)} {
			var buf bytes.Buffer
			buf.WriteString("prefix")
			encodeCopy(&buf, rows[:n], half)
			want := append([]byte("prefix"), referenceCopy(rows[:n], half)...)
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("half=%v, %d rows: encodeCopy differs from the format (%d vs %d bytes)", half, n, buf.Len(), len(want))
			}
		}
	}
}
