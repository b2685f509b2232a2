package planner

// CLIText is cliText for the external tests of the package.
var CLIText = cliText

// CLIFlag is cliFlag for the external tests of the package.
var CLIFlag = cliFlag
