// Copyright 2018 The gVisor Authors.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
//     http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

// Package gonet provides a Go net package compatible wrapper for a tcpip stack.
package gonet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/sync"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

var (
	errCanceled   = errors.New("operation canceled")
	errWouldBlock = errors.New("operation would block")
)

// timeoutError is how the net package reports timeouts.
type timeoutError struct{}

func (e *timeoutError) Error() string   { return "i/o timeout" }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

// A TCPListener is a wrapper around a TCP tcpip.Endpoint that implements
// net.Listener.
type TCPListener struct {
	stack      *stack.Stack
	ep         tcpip.Endpoint
	wq         *waiter.Queue
	cancelOnce sync.Once
	cancel     chan struct{}
}

// NewTCPListener creates a new TCPListener from a listening tcpip.Endpoint.
func NewTCPListener(s *stack.Stack, wq *waiter.Queue, ep tcpip.Endpoint) *TCPListener {
	return &TCPListener{
		stack:  s,
		ep:     ep,
		wq:     wq,
		cancel: make(chan struct{}),
	}
}

// maxListenBacklog is set to be reasonably high for most uses of gonet. Go net
// package uses the value in /proc/sys/net/core/somaxconn file in Linux as the
// default listen backlog. The value below matches the default in common linux
// distros.
//
// See: https://cs.opensource.google/go/go/+/refs/tags/go1.18.1:src/net/sock_linux.go;drc=refs%2Ftags%2Fgo1.18.1;l=66
const maxListenBacklog = 4096

// ListenTCP creates a new TCPListener.
func ListenTCP(s *stack.Stack, addr tcpip.FullAddress, network tcpip.NetworkProtocolNumber) (*TCPListener, error) {
	// Create a TCP endpoint, bind it, then start listening.
	var wq waiter.Queue
	ep, err := s.NewEndpoint(tcp.ProtocolNumber, network, &wq)
	if err != nil {
		return nil, errors.New(err.String())
	}

	if err := ep.Bind(addr); err != nil {
		ep.Close()
		return nil, &net.OpError{
			Op:   "bind",
			Net:  "tcp",
			Addr: fullToTCPAddr(addr),
			Err:  errors.New(err.String()),
		}
	}

	if err := ep.Listen(maxListenBacklog); err != nil {
		ep.Close()
		return nil, &net.OpError{
			Op:   "listen",
			Net:  "tcp",
			Addr: fullToTCPAddr(addr),
			Err:  errors.New(err.String()),
		}
	}

	return NewTCPListener(s, &wq, ep), nil
}

// Close implements net.Listener.Close.
func (l *TCPListener) Close() error {
	l.ep.Close()
	return nil
}

// Shutdown stops the HTTP server.
func (l *TCPListener) Shutdown() {
	l.ep.Shutdown(tcpip.ShutdownWrite | tcpip.ShutdownRead)
	l.cancelOnce.Do(func() {
		close(l.cancel) // broadcast cancellation
	})
}

// Addr implements net.Listener.Addr.
func (l *TCPListener) Addr() net.Addr {
	a, err := l.ep.GetLocalAddress()
	if err != nil {
		return nil
	}
	return fullToTCPAddr(a)
}

type deadlineTimer struct {
	mu sync.Mutex

	// +checklocks:mu
	readTimer *time.Timer
	// +checklocks:mu
	readCancelCh chan struct{}
	// +checklocks:mu
	readDeadline time.Time
	// +checklocks:mu
	writeTimer *time.Timer
	// +checklocks:mu
	writeCancelCh chan struct{}
	// +checklocks:mu
	writeDeadline time.Time
}

func newDeadlineTimer() deadlineTimer {
	return deadlineTimer{
		readCancelCh:  make(chan struct{}),
		writeCancelCh: make(chan struct{}),
	}
}

// +checklocksexclude:d.mu
func (d *deadlineTimer) readCancel() <-chan struct{} {
	d.mu.Lock()
	c := d.readCancelCh
	d.mu.Unlock()
	return c
}

// +checklocksexclude:d.mu
func (d *deadlineTimer) writeCancel() <-chan struct{} {
	d.mu.Lock()
	c := d.writeCancelCh
	d.mu.Unlock()
	return c
}

// setDeadline contains the shared logic for setting a deadline.
//
// cancelCh, timer and deadline must point to d.readCancelCh, d.readTimer
// and d.readDeadline, or to the write ones. checklocks verifies that d.mu is
// held, but cannot prove that the arguments identify the matching fields of
// d.
//
// (xhttpd) Each direction has one timer, made on its first deadline and
// reset for every later one, and a cancel channel replaced only once it has
// been closed: a server that sets a deadline per request allocates nothing
// for it. A firing for a deadline since moved or cleared finds the deadline
// it knows no longer passed (expire) and does nothing.
//
// +checklocks:d.mu
func (d *deadlineTimer) setDeadline(cancelCh *chan struct{}, timer **time.Timer, deadline *time.Time, t time.Time) {
	*deadline = t

	// Create a new channel if the old one was closed by an expired deadline.
	select {
	case <-*cancelCh:
		*cancelCh = make(chan struct{})
	default:
	}

	// "A zero value for t means I/O operations will not time out."
	// - net.Conn.SetDeadline
	if t.IsZero() {
		if *timer != nil {
			(*timer).Stop()
		}
		return
	}

	timeout := time.Until(t)
	if timeout <= 0 {
		close(*cancelCh)
		return
	}
	if *timer == nil {
		*timer = time.AfterFunc(timeout, func() { d.expire(cancelCh, timer, deadline) })
		return
	}
	(*timer).Reset(timeout)
}

// expire (xhttpd) is a deadline timer's function: it closes the cancel
// channel if the deadline set now has passed, and otherwise (the timer fired
// for an earlier deadline while a later one was being set) waits for the
// deadline set now.
//
// +checklocksexclude:d.mu
func (d *deadlineTimer) expire(cancelCh *chan struct{}, timer **time.Timer, deadline *time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if deadline.IsZero() {
		return
	}
	if left := time.Until(*deadline); left > 0 {
		(*timer).Reset(left)
		return
	}
	select {
	case <-*cancelCh:
	default:
		close(*cancelCh)
	}
}

// SetReadDeadline implements net.Conn.SetReadDeadline and
// net.PacketConn.SetReadDeadline.
//
// +checklocksexclude:d.mu
func (d *deadlineTimer) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.setDeadline(&d.readCancelCh, &d.readTimer, &d.readDeadline, t)
	d.mu.Unlock()
	return nil
}

// SetWriteDeadline implements net.Conn.SetWriteDeadline and
// net.PacketConn.SetWriteDeadline.
//
// +checklocksexclude:d.mu
func (d *deadlineTimer) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	d.setDeadline(&d.writeCancelCh, &d.writeTimer, &d.writeDeadline, t)
	d.mu.Unlock()
	return nil
}

// SetDeadline implements net.Conn.SetDeadline and net.PacketConn.SetDeadline.
//
// +checklocksexclude:d.mu
func (d *deadlineTimer) SetDeadline(t time.Time) error {
	d.mu.Lock()
	d.setDeadline(&d.readCancelCh, &d.readTimer, &d.readDeadline, t)
	d.setDeadline(&d.writeCancelCh, &d.writeTimer, &d.writeDeadline, t)
	d.mu.Unlock()
	return nil
}

// A TCPConn is a wrapper around a TCP tcpip.Endpoint that implements the net.Conn
// interface.
type TCPConn struct {
	deadlineTimer

	wq *waiter.Queue
	ep tcpip.Endpoint

	// readMu serializes reads.
	//
	// Lock ordering:
	// If both readMu and deadlineTimer.mu are to be used in a single
	// request, readMu must be acquired before deadlineTimer.mu.
	readMu sync.Mutex

	// read contains bytes that have been read from the endpoint,
	// but haven't yet been returned.
	//
	// +checklocks:readMu
	read []byte

	// (xhttpd) What a read needs and would otherwise allocate each time.
	//
	// +checklocks:readMu
	reading readState

	// (xhttpd) writeMu serializes writes, as Go's own net.Conn does, so
	// that the writes of two goroutines do not interleave and one writer
	// can keep what a write would otherwise allocate each time.
	writeMu sync.Mutex
	// +checklocks:writeMu
	writeReader buffersReader
	// +checklocks:writeMu
	writeOne [1][]byte // Write's buffer, for writeLocked
	// +checklocks:writeMu
	writeTwo [2][]byte // WriteLent's buffers, for writeLocked
	// +checklocks:writeMu
	fileReader fileReader // ReadFrom's payloader
	// +checklocks:writeMu
	lastFile *os.File // the file regularFile last checked, and its answer
	// +checklocks:writeMu
	lastFileRegular bool
	// +checklocks:writeMu
	writeWait waitChannel
}

// waitChannel (xhttpd) is a waiter entry and the channel it notifies, made
// once and registered each time a goroutine has to wait. A notification left
// in the channel from an earlier wait only makes a later one try again.
type waitChannel struct {
	entry waiter.Entry
	ch    <-chan struct{}
}

func (w *waitChannel) get(mask waiter.EventMask) (*waiter.Entry, <-chan struct{}) {
	if w.ch == nil {
		w.entry, w.ch = waiter.NewChannelEntry(mask)
	}
	return &w.entry, w.ch
}

// readState (xhttpd) is what commonRead would otherwise allocate for each
// call: the writer over the caller's buffer, which escapes into the
// endpoint's Read, and the wait.
//
// waited says the last read had to wait. A server's read after its answer
// usually does, the next request coming only after the answer, so then the
// next read registers for the wakeup before it tries, and tries once
// before it waits instead of twice.
type readState struct {
	w      tcpip.SliceWriter
	wait   waitChannel
	waited bool
}

// NewTCPConn creates a new TCPConn.
func NewTCPConn(wq *waiter.Queue, ep tcpip.Endpoint) *TCPConn {
	return &TCPConn{
		deadlineTimer: newDeadlineTimer(),
		wq:            wq,
		ep:            ep,
	}
}

// SetCork (xhttpd) sets or clears TCP_CORK on the connection: while it is
// set, data that does not fill a segment waits, up to 200 ms, for more, for
// the cork to be cleared, or for the connection to be closed for writing,
// and then leaves with the FIN.
func (c *TCPConn) SetCork(on bool) error {
	c.ep.SocketOptions().SetCorkOption(on)
	return nil
}

// Accept implements net.Conn.Accept.
func (l *TCPListener) Accept() (net.Conn, error) {
	n, wq, err := l.ep.Accept(nil)

	if _, ok := err.(*tcpip.ErrWouldBlock); ok {
		// Create wait queue entry that notifies a channel.
		waitEntry, notifyCh := waiter.NewChannelEntry(waiter.ReadableEvents)
		l.wq.EventRegister(&waitEntry)
		defer l.wq.EventUnregister(&waitEntry)

		for {
			n, wq, err = l.ep.Accept(nil)

			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				break
			}

			select {
			case <-l.cancel:
				return nil, errCanceled
			case <-notifyCh:
			}
		}
	}

	if err != nil {
		return nil, &net.OpError{
			Op:   "accept",
			Net:  "tcp",
			Addr: l.Addr(),
			Err:  errors.New(err.String()),
		}
	}

	return NewTCPConn(wq, n), nil
}

type opErrorer interface {
	newOpError(op string, err error) *net.OpError
}

// commonRead implements the common logic between net.Conn.Read and
// net.PacketConn.ReadFrom.
//
// (xhttpd) rs, if not nil, is the caller's, kept from one read to the next.
func commonRead(b []byte, ep tcpip.Endpoint, wq *waiter.Queue, deadline <-chan struct{}, addr *tcpip.FullAddress, errorer opErrorer, rs *readState) (int, error) {
	select {
	case <-deadline:
		return 0, errorer.newOpError("read", &timeoutError{})
	default:
	}

	if rs == nil {
		rs = new(readState)
	}
	rs.w = tcpip.SliceWriter(b)
	defer func() { rs.w = nil }()
	opts := tcpip.ReadOptions{NeedRemoteAddr: addr != nil}
	var res tcpip.ReadResult
	var err tcpip.Error = &tcpip.ErrWouldBlock{}
	if !rs.waited {
		res, err = ep.Read(&rs.w, opts)
	}

	if _, ok := err.(*tcpip.ErrWouldBlock); ok {
		// Create wait queue entry that notifies a channel.
		waitEntry, notifyCh := rs.wait.get(waiter.ReadableEvents)
		wq.EventRegister(waitEntry)
		defer wq.EventUnregister(waitEntry)
		rs.waited = false
		for {
			res, err = ep.Read(&rs.w, opts)
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				break
			}
			rs.waited = true
			select {
			case <-deadline:
				return 0, errorer.newOpError("read", &timeoutError{})
			case <-notifyCh:
			}
		}
	}

	if _, ok := err.(*tcpip.ErrClosedForReceive); ok {
		return 0, io.EOF
	}

	if err != nil {
		return 0, errorer.newOpError("read", errors.New(err.String()))
	}

	if addr != nil {
		*addr = res.RemoteAddr
	}
	return res.Count, nil
}

// Read implements net.Conn.Read.
//
// +checklocksexclude:c.readMu
// +checklocksexclude:c.deadlineTimer.mu
func (c *TCPConn) Read(b []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()

	deadline := c.readCancel()

	n, err := commonRead(b, c.ep, c.wq, deadline, nil, c, &c.reading)
	if n != 0 {
		c.ep.ModerateRecvBuf(n)
	}
	return n, err
}

// Write implements net.Conn.Write.
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *TCPConn) Write(b []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.writeOne[0] = b
	n, err := c.writeLocked(c.writeOne[:], len(b), false)
	c.writeOne[0] = nil
	return int(n), err
}

// WriteLent (xhttpd) writes copied, then lent, as one write, as
// WriteBuffers does. It copies copied into the netstack's buffers, as Write
// does, but not lent: the segments that carry lent's bytes read them in
// place (buffer.NewViewLent) until they are acknowledged. The caller must
// never change lent's bytes, such as a file's body cached for good; the
// garbage collector keeps them alive while a segment holds them.
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *TCPConn) WriteLent(copied, lent []byte) (int64, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.writeTwo = [2][]byte{copied, lent}
	n, err := c.writeLocked(c.writeTwo[:], len(copied)+len(lent), true)
	c.writeTwo = [2][]byte{}
	return n, err
}

// WriteBuffers (xhttpd) writes the buffers one after the other as one
// write, as writev(2) does on a kernel socket: what each holds can share a
// segment with the next one's, where a Write each would send a small first
// buffer (a response's head before its body) in a segment of its own.
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *TCPConn) WriteBuffers(bufs [][]byte) (int64, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	total := 0
	for _, b := range bufs {
		total += len(b)
	}
	return c.writeLocked(bufs, total, false)
}

// writeLocked writes the total bytes of bufs, lending the last buffer's if
// lend is set (WriteLent).
//
// +checklocks:c.writeMu
// +checklocksexclude:c.deadlineTimer.mu
func (c *TCPConn) writeLocked(bufs [][]byte, total int, lend bool) (int64, error) {
	deadline := c.writeCancel()

	// Check if deadlineTimer has already expired.
	select {
	case <-deadline:
		return 0, c.newOpError("write", &timeoutError{})
	default:
	}

	// We must handle two soft failure conditions simultaneously:
	//  1. Write may write nothing and return *tcpip.ErrWouldBlock.
	//     If this happens, we need to register for notifications if we have
	//     not already and wait to try again.
	//  2. Write may write fewer than the full number of bytes and return
	//     without error. In this case we need to try writing the remaining
	//     bytes again. I do not need to register for notifications.
	//
	// What is more, these two soft failure conditions can be interspersed.
	// There is no guarantee that all of the condition #1s will occur before
	// all of the condition #2s or visa-versa.
	var (
		r      = &c.writeReader
		nbytes int
		w      writeWaiter
	)
	var p tcpip.Payloader = r
	if lend {
		p = (*lendingReader)(r)
	}
	defer r.reset(nil, 0)
	defer c.unregisterWriter(&w)
	for nbytes != total {
		r.reset(bufs, nbytes)
		n, err := c.ep.Write(p, tcpip.WriteOptions{})
		nbytes += int(n)
		switch err.(type) {
		case nil:
		case *tcpip.ErrWouldBlock:
			if !c.waitWritable(&w, deadline) {
				return int64(nbytes), c.newOpError("write", &timeoutError{})
			}
		default:
			return int64(nbytes), c.newOpError("write", errors.New(err.String()))
		}
	}
	return int64(nbytes), nil
}

// writeWaiter (xhttpd) is a writer's registration for writable events.
type writeWaiter struct {
	entry *waiter.Entry
	ch    <-chan struct{}
}

// waitWritable (xhttpd) waits for room after a write found the send buffer
// full, and reports false if the deadline passed first. The first call
// only registers w: room may have come between the write and the
// registration, so the caller tries again at once. unregisterWriter must
// follow the last call.
//
// +checklocks:c.writeMu
func (c *TCPConn) waitWritable(w *writeWaiter, deadline <-chan struct{}) bool {
	if w.ch == nil {
		w.entry, w.ch = c.writeWait.get(waiter.WritableEvents)
		c.wq.EventRegister(w.entry)
		return true
	}
	select {
	case <-deadline:
		return false
	case <-w.ch:
		return true
	}
}

// unregisterWriter (xhttpd) ends what waitWritable registered, if anything.
func (c *TCPConn) unregisterWriter(w *writeWaiter) {
	if w.ch != nil {
		c.wq.EventUnregister(w.entry)
	}
}

// ReadFrom (xhttpd) implements io.ReaderFrom. From an *io.LimitedReader
// over a regular file (httpd's file from disk) the endpoint reads the file
// straight into its own buffers, where io.Copy would read it into a
// buffer of its own for Write to copy again: one copy per byte fewer, as
// sendfile(2) spares the kernel's sockets theirs. Any other reader, a pipe
// or a socket among them, is copied as io.Copy copies into a Writer:
// reading one inside the endpoint's Write would hold what it read until a
// whole piece came, with the writer's lock held and no deadline.
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *TCPConn) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	var file *os.File
	if ok {
		file, ok = lr.R.(*os.File)
	}
	if !ok {
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	c.writeMu.Lock()
	if !c.regularFile(file) {
		c.writeMu.Unlock()
		return io.Copy(struct{ io.Writer }{c}, r)
	}
	defer c.writeMu.Unlock()
	deadline := c.writeCancel()
	select {
	case <-deadline:
		return 0, c.newOpError("write", &timeoutError{})
	default:
	}
	f := &c.fileReader
	f.r = lr
	defer func() { *f = fileReader{} }()
	var (
		sent int64
		w    writeWaiter
	)
	defer c.unregisterWriter(&w)
	for lr.N > 0 && f.err == nil {
		f.read = 0
		n, err := c.ep.Write(f, tcpip.WriteOptions{})
		sent += n
		if back := f.read - n; back > 0 && f.err == nil {
			// The endpoint kept less than it read, as it may when its
			// room shrank while it read: read the rest again.
			if _, err := file.Seek(-back, io.SeekCurrent); err != nil {
				return sent, err
			}
			lr.N += back
		}
		switch err.(type) {
		case nil:
		case *tcpip.ErrWouldBlock:
			if !c.waitWritable(&w, deadline) {
				return sent, c.newOpError("write", &timeoutError{})
			}
		case *tcpip.ErrBadBuffer:
			// The file's read failed; f.err says how. Should the
			// endpoint ever refuse for another reason, what it read is
			// gone: end the write rather than skip those bytes.
			if f.err == nil {
				f.err = io.ErrNoProgress
			}
		default:
			return sent, c.newOpError("write", errors.New(err.String()))
		}
	}
	return sent, f.err
}

// regularFile (xhttpd) says whether f is a regular file. It remembers the
// last file it checked, which httpd sends in many pieces.
//
// +checklocks:c.writeMu
func (c *TCPConn) regularFile(f *os.File) bool {
	if f != c.lastFile {
		fi, err := f.Stat()
		c.lastFile, c.lastFileRegular = f, err == nil && fi.Mode().IsRegular()
	}
	return c.lastFileRegular
}

// fileReader (xhttpd) is ReadFrom's payloader: it reads its LimitedReader
// to the end, and keeps the error that stopped it. A file that ends before
// N bytes (it shrank since its size was taken) is io.ErrUnexpectedEOF: the
// endpoint asks a payloader for exactly Len bytes, and would ask a reader
// that gave fewer again and again.
type fileReader struct {
	r    *io.LimitedReader
	read int64 // bytes read during one endpoint Write
	err  error
}

// Read implements io.Reader.Read.
func (f *fileReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	want := f.r.N
	n, err := f.r.Read(p)
	f.read += int64(n)
	switch {
	case err == io.EOF && f.r.N > 0 && len(p) > 0:
		err = io.ErrUnexpectedEOF
	case err == io.EOF:
		return n, err
	case n == 0 && len(p) > 0 && want > 0 && err == nil:
		err = io.ErrNoProgress
	}
	f.err = err
	return n, err
}

// Len implements tcpip.Payloader.Len.
func (f *fileReader) Len() int { return int(min(f.r.N, math.MaxInt32)) }

// buffersReader (xhttpd) reads buffers one after the other, for the
// endpoint's Write: a tcpip.Payloader over them all. It never writes to the
// caller's slice of buffers, which a write that takes less than it read
// resets it over again.
type buffersReader struct {
	first []byte   // the unread part of the buffer being read
	rest  [][]byte // the buffers after it
	left  int      // bytes in first and rest
}

// reset makes r read bufs from offset skip on.
func (r *buffersReader) reset(bufs [][]byte, skip int) {
	r.first, r.rest, r.left = nil, nil, 0
	for i, b := range bufs {
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		r.first, r.rest = b[skip:], bufs[i+1:]
		r.left = len(r.first)
		for _, b := range r.rest {
			r.left += len(b)
		}
		return
	}
}

// Read implements io.Reader.Read.
func (r *buffersReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := 0
	for len(p) > 0 && r.left > n {
		if len(r.first) == 0 {
			r.first, r.rest = r.rest[0], r.rest[1:]
			continue
		}
		k := copy(p, r.first)
		n += k
		p, r.first = p[k:], r.first[k:]
	}
	r.left -= n
	return n, nil
}

// Len implements tcpip.Payloader.Len.
func (r *buffersReader) Len() int { return r.left }

// lendingReader (xhttpd) is a buffersReader that lends the bytes of its last
// buffer to the endpoint rather than copy them (WriteLent).
type lendingReader buffersReader

// Read implements io.Reader.Read.
func (r *lendingReader) Read(p []byte) (int, error) { return (*buffersReader)(r).Read(p) }

// Len implements tcpip.Payloader.Len.
func (r *lendingReader) Len() int { return r.left }

// TakeBuffer implements tcp.BufferPayloader.TakeBuffer: views of the last
// buffer's bytes, copies of the others'.
func (r *lendingReader) TakeBuffer(n int) (b buffer.Buffer) {
	for n > 0 && r.left > 0 {
		if len(r.first) == 0 {
			r.first, r.rest = r.rest[0], r.rest[1:]
			continue
		}
		k := min(len(r.first), n)
		if len(r.rest) == 0 {
			b.Append(buffer.NewViewLent(r.first[:k]))
		} else {
			k = min(k, buffer.MaxChunkSize)
			b.Append(buffer.NewViewWithData(r.first[:k]))
		}
		r.first = r.first[k:]
		r.left -= k
		n -= k
	}
	return b
}

var _ tcp.BufferPayloader = (*lendingReader)(nil)

// Close implements net.Conn.Close.
func (c *TCPConn) Close() error {
	c.ep.Close()
	return nil
}

// CloseRead shuts down the reading side of the TCP connection. Most callers
// should just use Close.
//
// A TCP Half-Close is performed the same as CloseRead for *net.TCPConn.
func (c *TCPConn) CloseRead() error {
	if terr := c.ep.Shutdown(tcpip.ShutdownRead); terr != nil {
		return c.newOpError("close", errors.New(terr.String()))
	}
	return nil
}

// CloseWrite shuts down the writing side of the TCP connection. Most callers
// should just use Close.
//
// A TCP Half-Close is performed the same as CloseWrite for *net.TCPConn.
func (c *TCPConn) CloseWrite() error {
	if terr := c.ep.Shutdown(tcpip.ShutdownWrite); terr != nil {
		return c.newOpError("close", errors.New(terr.String()))
	}
	return nil
}

// LocalAddr implements net.Conn.LocalAddr.
func (c *TCPConn) LocalAddr() net.Addr {
	a, err := c.ep.GetLocalAddress()
	if err != nil {
		return nil
	}
	return fullToTCPAddr(a)
}

// RemoteAddr implements net.Conn.RemoteAddr.
func (c *TCPConn) RemoteAddr() net.Addr {
	a, err := c.ep.GetRemoteAddress()
	if err != nil {
		return nil
	}
	return fullToTCPAddr(a)
}

func (c *TCPConn) newOpError(op string, err error) *net.OpError {
	return &net.OpError{
		Op:     op,
		Net:    "tcp",
		Source: c.LocalAddr(),
		Addr:   c.RemoteAddr(),
		Err:    err,
	}
}

func fullToTCPAddr(addr tcpip.FullAddress) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IP(addr.Addr.AsSlice()), Port: int(addr.Port)}
}

func fullToUDPAddr(addr tcpip.FullAddress) *net.UDPAddr {
	return &net.UDPAddr{IP: net.IP(addr.Addr.AsSlice()), Port: int(addr.Port)}
}

// DialTCP creates a new TCPConn connected to the specified address.
func DialTCP(s *stack.Stack, addr tcpip.FullAddress, network tcpip.NetworkProtocolNumber) (*TCPConn, error) {
	return DialContextTCP(context.Background(), s, addr, network)
}

// DialTCPWithBind creates a new TCPConn connected to the specified
// remoteAddress with its local address bound to localAddr.
func DialTCPWithBind(ctx context.Context, s *stack.Stack, localAddr, remoteAddr tcpip.FullAddress, network tcpip.NetworkProtocolNumber) (*TCPConn, error) {
	// Create TCP endpoint, then connect.
	var wq waiter.Queue
	ep, err := s.NewEndpoint(tcp.ProtocolNumber, network, &wq)
	if err != nil {
		return nil, errors.New(err.String())
	}

	// Create wait queue entry that notifies a channel.
	//
	// We do this unconditionally as Connect will always return an error.
	waitEntry, notifyCh := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&waitEntry)
	defer wq.EventUnregister(&waitEntry)

	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	default:
	}

	// Bind before connect if requested.
	if localAddr != (tcpip.FullAddress{}) {
		if err = ep.Bind(localAddr); err != nil {
			return nil, fmt.Errorf("ep.Bind(%+v) = %s", localAddr, err)
		}
	}

	err = ep.Connect(remoteAddr)
	if _, ok := err.(*tcpip.ErrConnectStarted); ok {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, ctx.Err()
		case <-notifyCh:
		}

		err = ep.LastError()
	}
	if err != nil {
		ep.Close()
		return nil, &net.OpError{
			Op:   "connect",
			Net:  "tcp",
			Addr: fullToTCPAddr(remoteAddr),
			Err:  errors.New(err.String()),
		}
	}

	return NewTCPConn(&wq, ep), nil
}

// DialContextTCP creates a new TCPConn connected to the specified address
// with the option of adding cancellation and timeouts.
func DialContextTCP(ctx context.Context, s *stack.Stack, addr tcpip.FullAddress, network tcpip.NetworkProtocolNumber) (*TCPConn, error) {
	return DialTCPWithBind(ctx, s, tcpip.FullAddress{} /* localAddr */, addr /* remoteAddr */, network)
}

// A UDPConn is a wrapper around a UDP tcpip.Endpoint that implements
// net.Conn and net.PacketConn.
type UDPConn struct {
	deadlineTimer

	ep tcpip.Endpoint
	wq *waiter.Queue
}

// NewUDPConn creates a new UDPConn.
func NewUDPConn(wq *waiter.Queue, ep tcpip.Endpoint) *UDPConn {
	return &UDPConn{
		deadlineTimer: newDeadlineTimer(),
		ep:            ep,
		wq:            wq,
	}
}

// DialUDP creates a new UDPConn.
//
// If laddr is nil, a local address is automatically chosen.
//
// If raddr is nil, the UDPConn is left unconnected.
func DialUDP(s *stack.Stack, laddr, raddr *tcpip.FullAddress, network tcpip.NetworkProtocolNumber) (*UDPConn, error) {
	var wq waiter.Queue
	ep, err := s.NewEndpoint(udp.ProtocolNumber, network, &wq)
	if err != nil {
		return nil, errors.New(err.String())
	}

	if laddr != nil {
		if err := ep.Bind(*laddr); err != nil {
			ep.Close()
			return nil, &net.OpError{
				Op:   "bind",
				Net:  "udp",
				Addr: fullToUDPAddr(*laddr),
				Err:  errors.New(err.String()),
			}
		}
	}

	c := NewUDPConn(&wq, ep)

	if raddr != nil {
		if err := c.ep.Connect(*raddr); err != nil {
			c.ep.Close()
			return nil, &net.OpError{
				Op:   "connect",
				Net:  "udp",
				Addr: fullToUDPAddr(*raddr),
				Err:  errors.New(err.String()),
			}
		}
	}

	return c, nil
}

func (c *UDPConn) newOpError(op string, err error) *net.OpError {
	return c.newRemoteOpError(op, nil, err)
}

func (c *UDPConn) newRemoteOpError(op string, remote net.Addr, err error) *net.OpError {
	return &net.OpError{
		Op:     op,
		Net:    "udp",
		Source: c.LocalAddr(),
		Addr:   remote,
		Err:    err,
	}
}

// RemoteAddr implements net.Conn.RemoteAddr.
func (c *UDPConn) RemoteAddr() net.Addr {
	a, err := c.ep.GetRemoteAddress()
	if err != nil {
		return nil
	}
	return fullToUDPAddr(a)
}

// Read implements net.Conn.Read
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *UDPConn) Read(b []byte) (int, error) {
	bytesRead, _, err := c.ReadFrom(b)
	return bytesRead, err
}

// ReadFrom implements net.PacketConn.ReadFrom.
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *UDPConn) ReadFrom(b []byte) (int, net.Addr, error) {
	deadline := c.readCancel()

	var addr tcpip.FullAddress
	n, err := commonRead(b, c.ep, c.wq, deadline, &addr, c, nil)
	if err != nil {
		return 0, nil, err
	}
	return n, fullToUDPAddr(addr), nil
}

// Write implements net.Conn.Write.
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *UDPConn) Write(b []byte) (int, error) {
	return c.WriteTo(b, nil)
}

// WriteTo implements net.PacketConn.WriteTo.
//
// +checklocksexclude:c.deadlineTimer.mu
func (c *UDPConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	deadline := c.writeCancel()

	// Check if deadline has already expired.
	select {
	case <-deadline:
		return 0, c.newRemoteOpError("write", addr, &timeoutError{})
	default:
	}

	// If we're being called by Write, there is no addr
	writeOptions := tcpip.WriteOptions{}
	if addr != nil {
		ua := addr.(*net.UDPAddr)
		writeOptions.To = &tcpip.FullAddress{
			Addr: tcpip.AddrFromSlice(ua.IP),
			Port: uint16(ua.Port),
		}
	}

	var r bytes.Reader
	r.Reset(b)
	n, err := c.ep.Write(&r, writeOptions)
	if _, ok := err.(*tcpip.ErrWouldBlock); ok {
		// Create wait queue entry that notifies a channel.
		waitEntry, notifyCh := waiter.NewChannelEntry(waiter.WritableEvents)
		c.wq.EventRegister(&waitEntry)
		defer c.wq.EventUnregister(&waitEntry)
		for {
			select {
			case <-deadline:
				return int(n), c.newRemoteOpError("write", addr, &timeoutError{})
			case <-notifyCh:
			}

			n, err = c.ep.Write(&r, writeOptions)
			if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
				break
			}
		}
	}

	if err == nil {
		return int(n), nil
	}

	return int(n), c.newRemoteOpError("write", addr, errors.New(err.String()))
}

// Close implements net.PacketConn.Close.
func (c *UDPConn) Close() error {
	c.ep.Close()
	return nil
}

// LocalAddr implements net.PacketConn.LocalAddr.
func (c *UDPConn) LocalAddr() net.Addr {
	a, err := c.ep.GetLocalAddress()
	if err != nil {
		return nil
	}
	return fullToUDPAddr(a)
}
