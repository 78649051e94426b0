//go:build cgo

// The function as a library loaded into the kelp-runtime front (KELP_IN_PROCESS=1): built with
// -buildmode=c-shared beside the worker (which is built without cgo, so without this file), it
// exports the C ABI of runtimes/PROTOCOL.md's "In process" section. The front calls
// kelp_native_call on the threads that read the requests, one call at a time per thread, with a
// load frame first and invoke frames then; the answers are the frames a worker would write. Up to
// KELP_MAX_WORKERS of its threads call at once, so Go keeps its default GOMAXPROCS (the cores),
// where a worker, which has one call at a time, runs with one.

package main

/*
#include <stdint.h>
#include <stdlib.h>

typedef struct {
	uint8_t *ptr;
	size_t len;
} kelp_frame;
*/
import "C"

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"unsafe"
)

// The function, loaded by the first load frame; every later load gets its outcome.
var (
	nativeLoad   sync.Once
	nativeWorker *worker
	nativeErr    error
)

//export kelp_native_abi
func kelp_native_abi() C.uint32_t { return 1 }

//export kelp_native_call
func kelp_native_call(frame *C.uint8_t, n C.size_t) C.kelp_frame {
	answer := nativeAnswer(C.GoBytes(unsafe.Pointer(frame), C.int(n)))
	p := C.malloc(C.size_t(len(answer)))
	copy(unsafe.Slice((*byte)(p), len(answer)), answer)
	return C.kelp_frame{ptr: (*C.uint8_t)(p), len: C.size_t(len(answer))}
}

//export kelp_native_free
func kelp_native_free(frame C.kelp_frame) { C.free(unsafe.Pointer(frame.ptr)) }

// nativeAnswer answers one frame: loaded or load_error for a load, the result of an invoke.
func nativeAnswer(input []byte) []byte {
	header, body, ok := splitFrame(input)
	if !ok {
		return failedResult("a frame from the front could not be read")
	}
	// An invoke is decoded once; a load (once per process) again, as what it is.
	var m invoke
	if err := decodeInvoke(header, &m); err != nil {
		return failedResult(fmt.Sprintf("a frame that is not JSON: %v", err))
	}
	switch m.Type {
	case "load":
		nativeLoad.Do(func() {
			var m load
			if nativeErr = json.Unmarshal(header, &m); nativeErr == nil {
				nativeWorker, nativeErr = loaded(&m)
			}
		})
		if nativeErr != nil {
			fmt.Fprintf(os.Stderr, "kelp: %v\n", nativeErr)
			return mustFrame(loadError{Type: "load_error", Message: nativeErr.Error()}, nil)
		}
		return mustFrame(map[string]string{"type": "loaded"}, nil)
	case "invoke":
		if nativeWorker == nil {
			return failedResult("invoked before the function was loaded")
		}
		return resultFrame(nativeWorker.call(&m, body))
	}
	return failedResult(fmt.Sprintf("unexpected message %q", m.Type))
}

// splitFrame is one whole frame's header and body.
func splitFrame(b []byte) (header, body []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint32(b))
	if len(b) < 8+n {
		return nil, nil, false
	}
	header, rest := b[4:4+n], b[4+n:]
	m := int(binary.BigEndian.Uint32(rest))
	if len(rest) < 4+m {
		return nil, nil, false
	}
	return header, rest[4 : 4+m], true
}

// failedResult is a 500 result whose body is message.
func failedResult(message string) []byte {
	res := result{Status: 500, Headers: [][2]string{{"Content-Type", contentTypeText}}, Failed: true}
	return resultFrame(res, []byte(message))
}

// mustFrame encodes a frame of Kelp's own types, which always encode.
func mustFrame(v interface{}, body []byte) []byte {
	frame, err := encodeFrame(v, body)
	if err != nil {
		panic(err)
	}
	return frame
}
