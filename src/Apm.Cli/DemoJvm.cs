using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Apm.Cli;

/// <summary>`apm up --demo`: compiles and starts a small Java service (demo/DemoService.java) for Apm to watch.</summary>
internal sealed class DemoJvm : IAsyncDisposable
{
    private readonly Process _process;

    private DemoJvm(Process process) => _process = process;

    public static async Task<DemoJvm> StartAsync(string stateDir, ILogger logger)
    {
        var source = Path.Combine(AppContext.BaseDirectory, "demo", "DemoService.java");
        var classes = Path.Combine(stateDir, "demo");
        Directory.CreateDirectory(classes);
        using (var javac = Process.Start(new ProcessStartInfo("javac", ["-d", classes, source]) { UseShellExecute = false })
                           ?? throw new InvalidOperationException("javac did not start"))
        {
            await javac.WaitForExitAsync().ConfigureAwait(false);
            if (javac.ExitCode != 0) throw new InvalidOperationException("javac failed on " + source);
        }

        // Started through Process (not a background shell job) so that it answers attach requests.
        var psi = new ProcessStartInfo("java", ["-Xmx256m", "-cp", classes, "DemoService"])
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardInput = true,
        };
        var process = Process.Start(psi) ?? throw new InvalidOperationException("java did not start");
        process.OutputDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        logger.LogInformation("Demo JVM DemoService started, pid {Pid}", process.Id);
        return new DemoJvm(process);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(true);
            await _process.WaitForExitAsync().ConfigureAwait(false);
        }

        _process.Dispose();
    }
}
