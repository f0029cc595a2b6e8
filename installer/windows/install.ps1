<#
.SYNOPSIS
    Installs, enrols or removes the Vigil agent on a managed Windows desktop.

.DESCRIPTION
    The agent must run in each user's desktop session: a service in session 0 cannot see the
    keyboard or the windows. So this script registers a scheduled task "Vigil agent" that starts
    at log on of any user, with limited rights, and restarts the agent if it stops.

    It installs either a PyInstaller build (-Build DIR, made with vigil-agent.spec) or a dedicated
    Python environment (the default: a venv under the install directory, pinned by
    requirements-windows.lock). Then it enrols the machine once, into ProgramData, and checks the
    connection to the collector. Each user's agent copies that enrolment into its own profile at
    log on (vigil-agent-session.ps1).

.EXAMPLE
    .\install.ps1 -Collector https://vigil.school.lan:8443 -Token T -Trust FPR -CaFingerprint SHA256
.EXAMPLE
    .\install.ps1 -Build .\dist\vigil -Collector ... -Token ... -Trust ... -CaFingerprint ...
.EXAMPLE
    .\install.ps1 -Uninstall            # keeps the enrolment and the users' spools
    .\install.ps1 -Uninstall -Purge     # deletes them too
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
    [Parameter(ParameterSetName = 'Install', Mandatory)] [string] $Collector,
    [Parameter(ParameterSetName = 'Install', Mandatory)] [string] $Token,
    [Parameter(ParameterSetName = 'Install', Mandatory)] [string] $Trust,
    [Parameter(ParameterSetName = 'Install')] [string] $CaFile,
    [Parameter(ParameterSetName = 'Install')] [string] $CaFingerprint,
    [Parameter(ParameterSetName = 'Install')] [string] $Build,
    [Parameter(ParameterSetName = 'Install')] [string] $Source,
    [Parameter(ParameterSetName = 'Install')] [string] $Wheelhouse,
    [Parameter(ParameterSetName = 'Install')] [string] $Python = 'py',
    [Parameter(ParameterSetName = 'Uninstall', Mandatory)] [switch] $Uninstall,
    [Parameter(ParameterSetName = 'Uninstall')] [switch] $Purge,
    [string] $InstallDir = (Join-Path $env:ProgramFiles 'Vigil')
)
Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$TaskName = 'Vigil agent'
$MachineConf = Join-Path $env:ProgramData 'Vigil\enrolment'
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path

function Fail([string] $Message) {
    Write-Error "vigil-installer: $Message" -ErrorAction Continue
    exit 1
}

function Assert-Admin {
    $id = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
    if (-not $id.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        Fail 'run this from an elevated PowerShell (Run as administrator)'
    }
}

# The console command used for enrolment; the agent itself runs windowless.
function Get-VigilCommand {
    $exe = Join-Path $InstallDir 'agent\vigil.exe'
    if (Test-Path $exe) { return @($exe) }
    return @((Join-Path $InstallDir 'venv\Scripts\python.exe'), '-m', 'vigil')
}

function Install-Files {
    New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
    if ($Build) {
        if (-not (Test-Path (Join-Path $Build 'vigil.exe'))) { Fail "no vigil.exe in $Build (build it with vigil-agent.spec)" }
        $dest = Join-Path $InstallDir 'agent'
        if (Test-Path $dest) { Remove-Item -Recurse -Force $dest }
        Copy-Item -Recurse -Path $Build -Destination $dest
        return
    }
    $venv = Join-Path $InstallDir 'venv'
    $lock = Join-Path $Here 'requirements-windows.lock'
    if (-not $Source) { $Source = (Resolve-Path (Join-Path $Here '..\..')).Path }
    if (-not (Test-Path (Join-Path $venv 'Scripts\python.exe'))) {
        & $Python -3.11 -m venv $venv
        if ($LASTEXITCODE -ne 0) { Fail "could not create a Python 3.11 environment with '$Python -3.11' (install Python 3.11 for all users)" }
    }
    $pip = @((Join-Path $venv 'Scripts\python.exe'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check', '-c', $lock)
    if ($Wheelhouse) { $pip += @('--no-index', '--find-links', $Wheelhouse) }
    & $pip[0] $pip[1..($pip.Length - 1)] "$Source[agent]"
    if ($LASTEXITCODE -ne 0) { Fail "pip could not install $Source" }
}

function Install-SessionScript {
    Copy-Item -Force (Join-Path $Here 'vigil-agent-session.ps1') (Join-Path $InstallDir 'vigil-agent-session.ps1')
}

function Register-AgentTask {
    $script = Join-Path $InstallDir 'vigil-agent-session.ps1'
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' `
        -Argument "-NoProfile -NonInteractive -WindowStyle Hidden -ExecutionPolicy Bypass -File `"$script`""
    # At log on of any user (no -User), run as that user (BUILTIN\Users, S-1-5-32-545), not elevated.
    $trigger = New-ScheduledTaskTrigger -AtLogOn
    $principal = New-ScheduledTaskPrincipal -GroupId 'S-1-5-32-545' -RunLevel Limited
    $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
        -ExecutionTimeLimit ([TimeSpan]::Zero) -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) `
        -MultipleInstances Parallel -StartWhenAvailable
    Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $trigger -Principal $principal `
        -Settings $settings -Description 'Vigil safeguarding agent: monitors this managed device and says so at log on.' `
        -Force | Out-Null
}

function Invoke-Enrol {
    $marker = Join-Path $MachineConf 'enrolled-with.txt'
    if ((Test-Path $marker) -and ((Get-Content -Raw $marker).Trim() -eq $Collector)) {
        Write-Host "vigil-installer: already enrolled with $Collector"
        return
    }
    New-Item -ItemType Directory -Force -Path $MachineConf | Out-Null
    $pin = @()
    if ($CaFile) { $pin = @('--ca', $CaFile) }
    if ($CaFingerprint) { $pin = @('--ca-fingerprint', $CaFingerprint) }
    $cmd = Get-VigilCommand
    $rest = @()
    if ($cmd.Length -gt 1) { $rest = $cmd[1..($cmd.Length - 1)] }
    & $cmd[0] @rest agent enrol --collector $Collector --token $Token --trust $Trust @pin --config-dir $MachineConf
    $code = $LASTEXITCODE
    if ($code -ne 0) { Fail 'enrolment failed (see the line above)' }
    Set-Content -Path $marker -Value $Collector -Encoding UTF8
    # Users read the enrolment (each agent copies it at log on); only administrators change it.
    & icacls $MachineConf /inheritance:r /grant:r 'SYSTEM:(OI)(CI)F' 'Administrators:(OI)(CI)F' 'Users:(OI)(CI)RX' | Out-Null
}

function Test-Collector {
    try {
        $handler = [System.Net.Http.HttpClientHandler]::new()
        if ($CaFingerprint) {
            $want = ($CaFingerprint -replace '^sha256:', '' -replace ':', '').ToLowerInvariant()
            $handler.ServerCertificateCustomValidationCallback = {
                param($req, $cert, $chain, $errors)
                $sha = [Security.Cryptography.SHA256]::Create()
                $seen = -join ($sha.ComputeHash($cert.RawData) | ForEach-Object { $_.ToString('x2') })
                return $seen -eq $want
            }.GetNewClosure()
        }
        $client = [System.Net.Http.HttpClient]::new($handler)
        $client.Timeout = [TimeSpan]::FromSeconds(10)
        $answer = $client.GetAsync("$($Collector.TrimEnd('/'))/healthz").GetAwaiter().GetResult()
        if (-not $answer.IsSuccessStatusCode) { Fail "the collector answered /healthz with HTTP $([int]$answer.StatusCode)" }
    } catch {
        Fail "installed, but the collector at $Collector cannot be reached: $($_.Exception.GetBaseException().Message)"
    }
}

function Remove-Agent {
    if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
        Stop-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue
        Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    }
    Get-Process -ErrorAction SilentlyContinue | Where-Object { $_.Path -and $_.Path.StartsWith($InstallDir) } |
        Stop-Process -Force -ErrorAction SilentlyContinue
    if (Test-Path $InstallDir) { Remove-Item -Recurse -Force $InstallDir }
    if ($Purge) {
        if (Test-Path $MachineConf) { Remove-Item -Recurse -Force $MachineConf }
        # Each user's copy of the enrolment and spool, under their local app data.
        Get-ChildItem 'C:\Users' -Directory -ErrorAction SilentlyContinue | ForEach-Object {
            foreach ($sub in 'AppData\Local\vigil-agent', 'AppData\Roaming\vigil-agent') {
                $p = Join-Path $_.FullName $sub
                if (Test-Path $p) { Remove-Item -Recurse -Force $p }
            }
        }
        $parent = Split-Path $MachineConf
        if ((Test-Path $parent) -and -not (Get-ChildItem $parent)) { Remove-Item $parent }
        Write-Host 'vigil-installer: removed the agent, the enrolment and the spools'
    } else {
        Write-Host "vigil-installer: removed the agent; kept the enrolment in $MachineConf (-Purge deletes it)"
    }
}

Assert-Admin
if ($Uninstall) { Remove-Agent; exit 0 }
if ($CaFile -and $CaFingerprint) { Fail 'give -CaFile or -CaFingerprint, not both' }
Install-Files
Install-SessionScript
Invoke-Enrol
Test-Collector
Register-AgentTask
Write-Host "vigil-installer: agent installed; it starts at the next log on of any user and reports to $Collector"
