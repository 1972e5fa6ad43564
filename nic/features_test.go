package nic

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// features builds ETHTOOL_GSTRINGS and ETHTOOL_GFEATURES answers for names,
// with the bits of each as set(i) says: available, requested, active,
// never_changed.
func features(names []string, set func(i int) [4]bool) (strs, bits []byte) {
	strs = make([]byte, sizeofGstrings+len(names)*ethGstringLen)
	binary.NativeEndian.PutUint32(strs, unix.ETHTOOL_GSTRINGS)
	binary.NativeEndian.PutUint32(strs[4:], ethSSFeatures)
	binary.NativeEndian.PutUint32(strs[8:], uint32(len(names)))
	for i, n := range names {
		copy(strs[sizeofGstrings+i*ethGstringLen:], n)
	}
	blocks := (len(names) + 31) / 32
	bits = make([]byte, 8+blocks*sizeofGfeature)
	binary.NativeEndian.PutUint32(bits, unix.ETHTOOL_GFEATURES)
	binary.NativeEndian.PutUint32(bits[4:], uint32(blocks))
	for i := range names {
		for w, on := range set(i) {
			if on {
				off := 8 + (i/32)*sizeofGfeature + 4*w
				binary.NativeEndian.PutUint32(bits[off:], binary.NativeEndian.Uint32(bits[off:])|1<<(i%32))
			}
		}
	}
	return strs, bits
}

// Forty features, so that the second block is read: rx-gro-hw at 3 in the
// first, on and changeable; rx-lro at 35 in the second, on and fixed (as
// virtio_net has rx-gro-hw when the host decides).
func TestParseFeatures(t *testing.T) {
	names := make([]string, 40)
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
	}
	names[3], names[35] = FeatureGROHW, FeatureLRO
	strs, bits := features(names, func(i int) [4]bool {
		switch i {
		case 3:
			return [4]bool{true, true, true, false}
		case 35:
			return [4]bool{false, false, true, false}
		case 36:
			return [4]bool{true, false, false, true}
		}
		return [4]bool{}
	})
	fs, err := parseFeatures(strs, bits)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 40 {
		t.Fatalf("%d features, want 40", len(fs))
	}
	for name, want := range map[string]Feature{
		FeatureGROHW: {Name: FeatureGROHW, Available: true, Requested: true, Active: true},
		FeatureLRO:   {Name: FeatureLRO, Active: true, Fixed: true},
		names[36]:    {Name: names[36], Available: true, Fixed: true},
	} {
		got, ok := fs.Get(name)
		if diff := cmp.Diff(want, got); !ok || diff != "" {
			t.Errorf("%s (found %v): -want +got:\n%s", name, ok, diff)
		}
	}
	if _, ok := fs.Get("rx-nothing"); ok {
		t.Error("Get found a feature that is not there")
	}
}

func TestParseFeaturesShort(t *testing.T) {
	strs, bits := features([]string{"a", "b"}, func(int) [4]bool { return [4]bool{} })
	if _, err := parseFeatures(strs[:sizeofGstrings+ethGstringLen], bits); err == nil {
		t.Error("names cut short: no error")
	}
	if _, err := parseFeatures(strs, bits[:10]); err == nil {
		t.Error("bits cut short: no error")
	}
}

// lo, read through the ioctls: no LRO, no hardware GRO.
func TestReadFeaturesLo(t *testing.T) {
	fs, err := ReadFeatures("lo")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{FeatureLRO, FeatureGROHW} {
		if f, ok := fs.Get(name); !ok || f.Active {
			t.Errorf("lo %s: %+v (found %v), want present and off", name, f, ok)
		}
	}
	if f, ok := fs.Get("tx-checksum-ip-generic"); !ok || !f.Active {
		t.Errorf("lo tx-checksum-ip-generic: %+v (found %v), want on", f, ok)
	}
}
