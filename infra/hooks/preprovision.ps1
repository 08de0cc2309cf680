# azd preprovision: give the azd environment a CHAINLIT_AUTH_SECRET (the UI's session-signing
# secret) when it has none, so main.bicep stores it in Key Vault. Made once and kept: a new one
# would sign every UI user out. Rotate with `azd env set CHAINLIT_AUTH_SECRET <new>`.
$ErrorActionPreference = 'Stop'
$current = azd env get-value CHAINLIT_AUTH_SECRET 2>$null
if ($LASTEXITCODE -ne 0 -or [string]::IsNullOrEmpty($current)) {
  $bytes = [System.Security.Cryptography.RandomNumberGenerator]::GetBytes(48)
  $secret = -join ($bytes | ForEach-Object { $_.ToString('x2') })
  azd env set CHAINLIT_AUTH_SECRET $secret | Out-Null
  Write-Output 'preprovision: made CHAINLIT_AUTH_SECRET for this azd environment'
}
$global:LASTEXITCODE = 0
