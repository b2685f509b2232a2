package corpus

import (
	"bytes"
	"io"
	"sync"
)

// maxPooledRead is the largest read buffer kept for reuse: a larger file is
// read into a buffer of its own size, left to the garbage collector. The
// pool holds about one buffer per reader at once (each reader takes one and
// gives it back), so it costs at most this much per worker; 1 MiB reads
// nearly every file of a real corpus without a new allocation (a 4 MiB cap
// gained no measurable speed on the benchmark slice and cost 10 MiB of RSS).
const maxPooledRead = 1<<20 + 64<<10

// readBufs holds read buffers (*[]byte) for reuse across files: reading a
// file then costs no allocation and no copy once the buffer has grown to
// the corpus's usual file size (a fresh bytes.Buffer doubles, and copies,
// about log2(size/512) times per file).
var readBufs = sync.Pool{New: func() any { return new([]byte) }}

// readPooled reads r to its end into a pooled buffer; size is the expected
// length (a file's size), so that a file is read with no copy. The bytes are
// valid until release is called; release must be called once.
func readPooled(r io.Reader, size int64) (b []byte, release func(), err error) {
	bp := readBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	if want := size + bytes.MinRead; want > int64(cap(buf)) {
		buf = make([]byte, 0, max(want, 32<<10)) // pooled only if ≤ maxPooledRead
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow (amortized doubling)
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	release = func() {
		if cap(buf) <= maxPooledRead {
			*bp = buf[:0]
		}
		readBufs.Put(bp)
	}
	return buf, release, err
}
