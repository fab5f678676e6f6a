// Package mlsclientpb holds the Go code generated from the official MLS
// interop harness's service definition (mlswg/mls-implementations,
// interop/proto/mls_client.proto), which Grove keeps read-only in
// ../shared/spec/interop. Regenerate with `go generate ./...` in interop/;
// it needs protoc (Debian's protobuf-compiler), protoc-gen-go and
// protoc-gen-go-grpc on PATH.
package mlsclientpb

//go:generate protoc --proto_path=../../../shared/spec/interop --go_out=. --go_opt=paths=source_relative --go_opt=Mmls_client.proto=grove/interop/proto;mlsclientpb --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mmls_client.proto=grove/interop/proto;mlsclientpb mls_client.proto
