package syncookie

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// The reference vectors of SipHash-2-4 (key 00..0f, message 00..len-1) for
// lengths that are whole words.
func TestSipHashVectors(t *testing.T) {
	var kb [16]byte
	for i := range kb {
		kb[i] = byte(i)
	}
	k := [2]uint64{binary.LittleEndian.Uint64(kb[:8]), binary.LittleEndian.Uint64(kb[8:])}
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{8, 0x93f5f5799a932462},
	} {
		msg := make([]byte, tc.n)
		for i := range msg {
			msg[i] = byte(i)
		}
		var m []uint64
		for i := 0; i < tc.n; i += 8 {
			m = append(m, binary.LittleEndian.Uint64(msg[i:]))
		}
		if got := sipHash24(k, m); got != tc.want {
			t.Errorf("SipHash-2-4 of %d bytes = %#x, want %#x", tc.n, got, tc.want)
		}
	}
}

var tuples = []Tuple{
	{netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), 80, 40000},
	{netip.MustParseAddr("2001:2::1"), netip.MustParseAddr("2001:2::2"), 80, 40000},
}

func TestMakeCheck(t *testing.T) {
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tu := range tuples {
		for idx := uint32(0); idx < 4; idx++ {
			for _, ts := range []uint32{0, 1, 200, 255} {
				c := k.Make(tu, 123456789, ts, idx)
				for age := uint32(0); age <= 3; age++ {
					got, ok := k.Check(tu, c, 123456789, (ts+age)&tsMask)
					if want := age <= maxAge; ok != want || (ok && got != idx) {
						t.Errorf("%v ts %d idx %d, checked %d periods later: (%d, %v), want (%d, %v)", tu.Local, ts, idx, age, got, ok, idx, want)
					}
				}
			}
		}
		c := k.Make(tu, 1000, 7, 3)
		if _, ok := k.Check(tu, c, 1100, 7); ok {
			t.Errorf("%v: a cookie checked against another ISN passed", tu.Local)
		}
		other := tu
		other.RemotePort++
		if _, ok := k.Check(other, c, 1000, 7); ok {
			t.Errorf("%v: a cookie checked for another port passed", tu.Local)
		}
		k2, _ := NewKey()
		if _, ok := k2.Check(tu, c, 1000, 7); ok {
			t.Errorf("%v: a cookie checked under another key passed", tu.Local)
		}
	}
}

// Guessing: of random cookies for one tuple, about 4 in 2^24 * 256/3 pass.
func TestRandomCookiesFail(t *testing.T) {
	k, _ := NewKey()
	pass := 0
	for c := uint32(0); c < 1<<20; c++ {
		if _, ok := k.Check(tuples[0], c*4099, 5, 9); ok {
			pass++
		}
	}
	if pass > 2 {
		t.Errorf("%d of 2^20 guessed cookies passed", pass)
	}
}

func TestMSSIndex(t *testing.T) {
	for mss, want := range map[uint16]uint32{0: 0, 536: 0, 1299: 0, 1300: 1, 1440: 2, 1459: 2, 1460: 3, 8960: 3} {
		if got := MSSIndex(mss); got != want {
			t.Errorf("MSSIndex(%d) = %d, want %d", mss, got, want)
		}
	}
}

func TestHashAllocs(t *testing.T) {
	k, _ := NewKey()
	if n := testing.AllocsPerRun(100, func() { k.Check(tuples[1], 1, 2, 3) }); n != 0 {
		t.Errorf("Check allocates %v times", n)
	}
}
