package pgvector

// FitPowerLaw exposes fitPowerLaw to the external tests.
var FitPowerLaw = fitPowerLaw
