package commitorder

import "testing"

// Scripted adversarial scenarios from the issue that still call Go tests;
// the others are transcripts in testdata/ (see TestInteraction).

func TestScenarioChildBeforeParent(t *testing.T) {
	TestChildBeforeParentIsHeldAndFetched(t)
}

func TestScenarioEquivocatingCommitter(t *testing.T) {
	TestDoubleCommitOnlyLowestCounts(t)
}

// TestScenarioWelcomeFromLosingCommit: the committers' side (a Welcome
// goes out only for the commit that wins). The joiner's side is
// testdata/welcome_from_losing_commit.txt.
func TestScenarioWelcomeFromLosingCommit(t *testing.T) {
	TestLosingOwnCommitDiscardedWinningSettled(t)
}

func TestScenarioForgedCommitterIdentity(t *testing.T) {
	TestInvalidCommitsNeverWin(t)
}
