module grove/interop

go 1.26.7

replace grove => ../

require (
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
	grove v0.0.0-00010101000000-000000000000
)

require (
	github.com/cloudflare/circl v1.6.5 // indirect
	golang.org/x/crypto v0.59.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.44.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)
