package node

import (
	"context"
	"encoding/hex"

	"grove/node/api"
	"grove/store"
)

// apiFile describes a file a post carries.
func (n *Node) apiFile(a *groupActor, m store.Message, f *fileMeta) api.File {
	return api.File{ID: hex.EncodeToString(m.ID[:]), Group: a.hexID, Name: f.Name, Size: int64(f.Size), Type: f.Type,
		Hash: hex.EncodeToString(f.Hash[:]), Sender: a.memberName(m.Sender), Time: m.Time}
}

func (n *Node) postFile(ctx context.Context, req api.PostRequest) (api.Message, error) {
	return api.Message{}, api.Errorf(api.CodeUnavailable, "files are not supported yet")
}

// dropFileChunks deletes the chunks of a deleted message's file.
func (a *groupActor) dropFileChunks(m store.Message) {}

// Files implements api.Conversations.
func (n *Node) Files(ctx context.Context, group string) ([]api.File, error) {
	return nil, api.Errorf(api.CodeUnavailable, "files are not supported yet")
}

// SaveFile implements api.Conversations.
func (n *Node) SaveFile(ctx context.Context, req api.SaveRequest) (api.File, error) {
	return api.File{}, api.Errorf(api.CodeUnavailable, "files are not supported yet")
}
