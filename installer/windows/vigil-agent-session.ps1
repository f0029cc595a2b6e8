<#
    Run by the "Vigil agent" scheduled task at log on, as the signed-in user, in their session.
    Copies the machine's enrolment into the user's own config directory (the agent writes policy
    and trust updates there), then runs the agent, restarting it if it stops unexpectedly.
#>
$ErrorActionPreference = 'Continue'
$InstallDir = Split-Path -Parent $MyInvocation.MyCommand.Path
$Machine = Join-Path $env:ProgramData 'Vigil\enrolment'
$UserConf = Join-Path $env:LOCALAPPDATA 'vigil-agent'  # platformdirs' user_config_dir

$src = Join-Path $Machine 'enrolment.json'
$dst = Join-Path $UserConf 'enrolment.json'
if ((Test-Path $src) -and (-not (Test-Path $dst) -or
        (Get-FileHash $src).Hash -ne (Get-FileHash $dst).Hash)) {
    New-Item -ItemType Directory -Force -Path $UserConf | Out-Null
    foreach ($f in 'enrolment.json', 'trust.json', 'collector-ca.pem') {
        $p = Join-Path $Machine $f
        if (Test-Path $p) { Copy-Item -Force $p (Join-Path $UserConf $f) }
    }
    Remove-Item -Force -ErrorAction SilentlyContinue (Join-Path $UserConf 'policy.json')
}

$exe = Join-Path $InstallDir 'agent\vigil-agent.exe'
if (Test-Path $exe) { $cmd = @($exe) } else { $cmd = @((Join-Path $InstallDir 'venv\Scripts\pythonw.exe'), '-m', 'vigil') }
$delay = 3
while ($true) {
    $args_ = @()
    if ($cmd.Length -gt 1) { $args_ = $cmd[1..($cmd.Length - 1)] }
    & $cmd[0] @args_ agent run | Out-Null
    if ($LASTEXITCODE -eq 0) { break }   # the user signed out
    Start-Sleep -Seconds $delay
    if ($delay -lt 60) { $delay *= 2 }
}
