package checkpoint

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// vectorProblem returns why an embedding cannot be stored (an element NaN or
// infinite, or every element zero), or "".
func vectorProblem(v []float32) string {
	var sum float64
	for i, x := range v {
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Sprintf("has %v at element %d", x, i)
		}
		sum += f * f
	}
	if sum == 0 {
		return "is all zeros"
	}
	return ""
}

// invalidUTF8Column returns the name of the first string column of r that is
// not valid UTF-8, or "". Parquet STRING columns must hold UTF-8: DuckDB
// refuses a whole part otherwise.
func invalidUTF8Column(r *Row) string {
	switch {
	case !utf8.ValidString(r.DocID):
		return colDocID
	case !utf8.ValidString(r.ChunkSHA256):
		return colSHA256
	case !utf8.ValidString(r.Text):
		return colText
	case !utf8.ValidString(r.Model):
		return colModel
	}
	return ""
}
