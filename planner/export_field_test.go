package planner

// CLIText is cliText for the external tests of the package.
var CLIText = cliText
