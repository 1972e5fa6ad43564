package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// answer reads HTTP/1.1 answers to GETs of static files from a byte
// stream that arrives in pieces: a status line, headers with
// Content-Length, and that many bytes of body, which it counts and drops.
type answer struct {
	head []byte // the head so far, while it is incomplete
	body int64  // body bytes still to come; -1 while reading a head
	got  int64  // body bytes of the answer being read
}

func newAnswer() answer { return answer{body: -1} }

// maxHead bounds an answer's head: more means the stream is not what a
// file server sends.
const maxHead = 16 << 10

var errStatus = errors.New("status not 200")

// feed takes the next bytes of the stream and returns how many of them it
// used and, when they complete an answer, its body's length. A caller
// feeds the rest again: bytes after an answer belong to the next.
func (a *answer) feed(b []byte) (used int, done bool, bodyLen int64, err error) {
	if a.body < 0 {
		head := b // the head is usually whole in one piece: no copy
		old := len(a.head)
		if old > 0 {
			a.head = append(a.head, b[:min(len(b), maxHead+4-old)]...)
			head = a.head
		}
		i := bytes.Index(head, crlfcrlf)
		if i < 0 {
			if old == 0 {
				a.head = append(a.head, b[:min(len(b), maxHead+4)]...)
			}
			if len(a.head) > maxHead {
				return 0, false, 0, fmt.Errorf("answer head over %d bytes", maxHead)
			}
			return len(b), false, 0, nil
		}
		n, err := contentLength(head[:i+4])
		if err != nil {
			return 0, false, 0, err
		}
		used = i + 4 - old
		a.head = a.head[:0]
		a.body, a.got = n, 0
	}
	k := min(int64(len(b)-used), a.body)
	used += int(k)
	a.body -= k
	a.got += k
	if a.body > 0 {
		return used, false, 0, nil
	}
	a.body = -1
	return used, true, a.got, nil
}

var crlfcrlf = []byte("\r\n\r\n")

// contentLength checks a head's status and returns its Content-Length.
func contentLength(head []byte) (int64, error) {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return 0, fmt.Errorf("%w: %q", errStatus, line)
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Content-Length")) {
			n, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("Content-Length %q", bytes.TrimSpace(v))
			}
			return n, nil
		}
	}
	return 0, errors.New("no Content-Length")
}
