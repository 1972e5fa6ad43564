package nic

// freeFrames is a stack of free UMEM frame addresses. It never allocates
// after construction: Alloc and Free move an index over a fixed slice. It is
// not safe for concurrent use; each owner (a socket's transmit side) guards
// it with its own lock.
type freeFrames struct {
	free []uint64
	n    int
}

// newFreeFrames makes an allocator holding count frames of size bytes
// starting at UMEM offset base.
func newFreeFrames(base uint64, count int, size uint64) *freeFrames {
	f := &freeFrames{free: make([]uint64, count), n: count}
	for i := range f.free {
		f.free[i] = base + uint64(i)*size
	}
	return f
}

// Alloc takes a free frame; ok is false when none is left.
func (f *freeFrames) Alloc() (addr uint64, ok bool) {
	if f.n == 0 {
		return 0, false
	}
	f.n--
	return f.free[f.n], true
}

// Free returns a frame. Returning more frames than were taken means a frame
// was freed twice, which would hand one buffer to two packets: that is a bug
// in the caller, so it panics rather than corrupt data.
func (f *freeFrames) Free(addr uint64) {
	if f.n == len(f.free) {
		panic("nic: frame freed twice")
	}
	f.free[f.n] = addr
	f.n++
}

// Len is the number of free frames.
func (f *freeFrames) Len() int { return f.n }

// Cap is the number of frames the allocator owns.
func (f *freeFrames) Cap() int { return len(f.free) }
