package loadgen

import (
	"strings"
	"testing"
)

// Answers are read whole however the stream is cut: pipelined answers in
// one piece, a head cut anywhere (its blank line too), bodies in pieces.
func TestAnswerPieces(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" +
		"HTTP/1.1 200 OK\r\ncontent-length:0\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 12\r\n\r\nhello, world"
	want := []int64{5, 0, 12}
	for cut := 1; cut <= len(stream); cut++ {
		a := newAnswer()
		var got []int64
		for rest := []byte(stream); len(rest) > 0; {
			piece := rest[:min(cut, len(rest))]
			for len(piece) > 0 {
				used, done, n, err := a.feed(piece)
				if err != nil {
					t.Fatalf("pieces of %d: %v", cut, err)
				}
				if done {
					got = append(got, n)
				}
				piece = piece[used:]
				rest = rest[used:]
				if used == 0 && !done {
					t.Fatalf("pieces of %d: no progress", cut)
				}
			}
		}
		if len(got) != len(want) || got[0] != 5 || got[1] != 0 || got[2] != 12 {
			t.Fatalf("pieces of %d: bodies %v, want %v", cut, got, want)
		}
	}
}

// What a file server does not send is an error: another status, no length,
// a head without end.
func TestAnswerErrors(t *testing.T) {
	for _, s := range []string{
		"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\n" + strings.Repeat("X-A: b\r\n", 3000),
	} {
		a := newAnswer()
		b := []byte(s)
		var err error
		for len(b) > 0 && err == nil {
			var used int
			used, _, _, err = a.feed(b)
			b = b[used:]
		}
		if err == nil {
			t.Errorf("%.40q: no error", s)
		}
	}
}
