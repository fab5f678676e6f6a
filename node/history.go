// History for new members (grove group settings GROUP
// --history-for-new-members): an admin sets in the group policy how far
// back the member that adds someone sends them the group's messages.

package node

import "time"

// maxHistoryForNewMembers bounds the history a policy may grant a new
// member.
const maxHistoryForNewMembers = 10 * 365 * 24 * time.Hour
