using System.Globalization;

namespace Apm.Jvm.Attach;

/// <summary>
/// <c>apm attach [--timeout S] &lt;pid&gt; &lt;command...&gt;</c>: a jcmd that needs no JDK. Sends the diagnostic command
/// line through <see cref="HotSpotAttachClient"/>, prints the JVM's output on stdout and exits 0; every failure
/// prints its reason on stderr and exits with the code of its kind (see <see cref="ExitCodeOf"/> and docs/operations.md).
/// </summary>
public static class AttachCommand
{
    public const int Ok = 0;
    public const int CommandFailed = 1;
    public const int Usage = 2;
    public const int Timeout = 3;
    public const int ProcessNotFound = 4;
    public const int NotAJvm = 5;
    public const int AttachDisabled = 6;
    public const int SigquitIgnored = 7;
    public const int PermissionDenied = 8;
    public const int ProcessExited = 9;
    public const int ProtocolError = 10;
    public const int Cancelled = 130;

    /// <summary>Budget of one request when --timeout is not given; a heap dump of a large heap needs more.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    private const string UsageText = "usage: apm attach [--timeout S] <pid> <command...>  (e.g. apm attach 1234 GC.finalizer_info; apm attach 1234 help)";

    /// <summary>The exit code of a failure kind: each kind has its own, so scripts can tell them apart.</summary>
    public static int ExitCodeOf(AttachFailure failure) => failure switch
    {
        AttachFailure.CommandFailed => CommandFailed,
        AttachFailure.Timeout => Timeout,
        AttachFailure.ProcessNotFound => ProcessNotFound,
        AttachFailure.NotAJvm => NotAJvm,
        AttachFailure.AttachDisabled => AttachDisabled,
        AttachFailure.SigquitIgnored => SigquitIgnored,
        AttachFailure.PermissionDenied => PermissionDenied,
        AttachFailure.ProcessExited => ProcessExited,
        _ => ProtocolError,
    };

    /// <summary>Runs the command; <paramref name="args"/> excludes the word "attach".</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        var timeout = DefaultTimeout;
        var i = 0;
        if (i < args.Length && args[i] == "--timeout")
        {
            if (i + 1 >= args.Length || !double.TryParse(args[i + 1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var seconds)
                || !(seconds > 0) || seconds > int.MaxValue / 1000)
            {
                await stderr.WriteLineAsync("apm: --timeout takes a positive number of seconds\n" + UsageText).ConfigureAwait(false);
                return Usage;
            }

            timeout = TimeSpan.FromSeconds(seconds);
            i += 2;
        }

        if (args.Length - i < 2 || !int.TryParse(args[i], NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid <= 0)
        {
            await stderr.WriteLineAsync(UsageText).ConfigureAwait(false);
            return Usage;
        }

        var commandLine = string.Join(' ', args[(i + 1)..]);
        try
        {
            var output = await new HotSpotAttachClient().JcmdAsync(pid, commandLine, timeout, ct).ConfigureAwait(false);
            await stdout.WriteAsync(output).ConfigureAwait(false);
            await stdout.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            return Ok;
        }
        catch (AttachException e)
        {
            await stderr.WriteLineAsync($"apm: attach to {pid} failed ({e.Reason}): {e.Message}").ConfigureAwait(false);
            return ExitCodeOf(e.Reason);
        }
        catch (ArgumentException e)
        {
            // The command line is longer than HotSpot accepts, or contains NUL.
            await stderr.WriteLineAsync($"apm: {e.Message}\n{UsageText}").ConfigureAwait(false);
            return Usage;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            await stderr.WriteLineAsync($"apm: cancelled; JVM {pid} may still run the command").ConfigureAwait(false);
            return Cancelled;
        }
    }
}
