using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Apm.Jvm.Attach;

/// <summary>
/// Talks HotSpot's dynamic attach protocol (version 1) to a local JVM without jcmd or any JDK tool:
/// finds or wakes the JVM's attach listener (trigger file + SIGQUIT), connects to its Unix socket at
/// &lt;tmp&gt;/.java_pid&lt;nspid&gt;, sends one command and reads the status line and output to EOF.
/// </summary>
/// <remarks>
/// Works across users when the caller is root without switching credentials (which .NET cannot do per
/// thread): HotSpot accepts a trigger file owned by its own euid or root, and a socket peer whose
/// euid/egid equal its own or whose euid is root. Works for JVMs in containers through
/// /proc/&lt;pid&gt;/root and the namespace pid (last NStgid value). Each request is independent (no shared
/// lock), so a stuck JVM only costs its own request's timeout. Thread-safe.
/// Cost: a warm request is one connect plus one JVM command (about a millisecond for GC.finalizer_info);
/// the first request to a JVM also waits for its attach listener to start (tens of milliseconds).
/// </remarks>
public sealed class HotSpotAttachClient
{
    /// <summary>Default cap on a response: a class histogram of a large application is a few megabytes.</summary>
    public const int DefaultMaxResponseBytes = 32 * 1024 * 1024;

    // HotSpot's limits for a version 1 request (AttachOperation::name_length_max, arg_length_max, arg_count_max).
    private const int MaxCommandBytes = 16;
    private const int MaxArgBytes = 1024;
    private const int ArgCount = 3;
    private const int MaxStatusChars = 11;

    // How long a JVM whose SIGQUIT is not (yet) handled gets to install its handler: JVM startup takes
    // tens of milliseconds between exec and signal setup on this class of machine.
    private static readonly TimeSpan SignalSettleTime = TimeSpan.FromSeconds(1);

    /// <summary>Creates a client whose responses may be at most <paramref name="maxResponseBytes"/> long.</summary>
    public HotSpotAttachClient(int maxResponseBytes = DefaultMaxResponseBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxResponseBytes, 16);
        MaxResponseBytes = maxResponseBytes;
    }

    /// <summary>Responses longer than this fail with <see cref="AttachFailure.ProtocolError"/> instead of growing memory.</summary>
    public int MaxResponseBytes { get; }

    /// <summary>
    /// Runs a diagnostic command (e.g. "GC.finalizer_info") and returns its output; throws
    /// <see cref="AttachException"/> with <see cref="AttachFailure.CommandFailed"/> when the JVM reports an error.
    /// </summary>
    /// <param name="pid">Host pid of the JVM.</param>
    /// <param name="commandLine">The whole jcmd command line, at most 1,024 UTF-8 bytes.</param>
    /// <param name="timeout">Budget for the whole request (listener start, connect, write, read).</param>
    /// <param name="ct">Cancels the request; cancellation surfaces as <see cref="OperationCanceledException"/>.</param>
    public async Task<string> JcmdAsync(int pid, string commandLine, TimeSpan timeout, CancellationToken ct)
    {
        var response = await ExecuteAsync(pid, "jcmd", [commandLine], timeout, ct).ConfigureAwait(false);
        return response.EnsureSuccess(commandLine).Output;
    }

    /// <summary>
    /// Sends one attach command (e.g. "jcmd", "properties", "threaddump") with up to three arguments and
    /// returns the JVM's raw answer, whatever its status; call <see cref="AttachResponse.EnsureSuccess"/> to
    /// turn a non-zero status into an exception. Every other failure throws <see cref="AttachException"/>.
    /// </summary>
    /// <param name="pid">Host pid of the JVM.</param>
    /// <param name="command">Attach command name, at most 16 bytes.</param>
    /// <param name="args">Zero to three arguments, each at most 1,024 UTF-8 bytes, without NUL characters.</param>
    /// <param name="timeout">Budget for the whole request.</param>
    /// <param name="ct">Cancels the request; cancellation surfaces as <see cref="OperationCanceledException"/>.</param>
    public async Task<AttachResponse> ExecuteAsync(int pid, string command, IReadOnlyList<string> args, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(pid);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        var request = EncodeRequest(command, args);

        using var timeoutCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeoutCts.CancelAfter(timeout);
        var token = timeoutCts.Token;
        var progress = new Progress();
        try
        {
            var target = Target.Read(pid);
            using var socket = await ConnectAsync(target, progress, token).ConfigureAwait(false);
            progress.Step = "sending the request";
            await SendAllAsync(socket, request, token).ConfigureAwait(false);
            progress.Step = "waiting for the response";
            var body = await ReceiveToEndAsync(target, socket, token).ConfigureAwait(false);
            return ParseResponse(pid, body);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw TimeoutFailure(pid, timeout, progress.Step + progress.Hint);
        }
    }

    /// <summary>Encodes protocol version 1: "1", the command and three arguments, each NUL-terminated.</summary>
    internal static byte[] EncodeRequest(string command, IReadOnlyList<string> args)
    {
        ArgumentException.ThrowIfNullOrEmpty(command);
        ArgumentNullException.ThrowIfNull(args);
        if (args.Count > ArgCount) throw new ArgumentException($"the attach protocol takes at most {ArgCount} arguments, got {args.Count}", nameof(args));
        var parts = new List<string>(2 + ArgCount) { "1", command };
        parts.AddRange(args);
        while (parts.Count < 2 + ArgCount) parts.Add(string.Empty);

        var buffer = new List<byte>(64);
        for (var i = 0; i < parts.Count; i++)
        {
            var part = parts[i] ?? throw new ArgumentException("an attach argument is null", nameof(args));
            if (part.Contains('\0', StringComparison.Ordinal)) throw new ArgumentException("attach strings cannot contain NUL", i == 1 ? nameof(command) : nameof(args));
            var bytes = Encoding.UTF8.GetBytes(part);
            var limit = i == 1 ? MaxCommandBytes : MaxArgBytes;
            if (bytes.Length > limit)
                throw new ArgumentException($"'{Truncate(part, 40)}' is {bytes.Length} bytes; HotSpot accepts at most {limit}", i == 1 ? nameof(command) : nameof(args));
            buffer.AddRange(bytes);
            buffer.Add(0);
        }

        return [.. buffer];
    }

    /// <summary>Splits a raw answer into its decimal status line and the output.</summary>
    internal static AttachResponse ParseResponse(int pid, ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty)
            throw new AttachException(AttachFailure.ProtocolError, pid, $"process {pid} closed the attach connection without answering");
        var newline = body.IndexOf((byte)'\n');
        var status = ParseStatus(pid, body, newline);
        var output = newline < 0 ? string.Empty : Encoding.UTF8.GetString(body[(newline + 1)..]);
        return new AttachResponse(pid, status, output);
    }

    /// <summary>
    /// Checks the first line of an answer while it arrives: false while more bytes are needed to judge it, true once
    /// it is a status line; throws <see cref="AttachFailure.ProtocolError"/> as soon as it cannot be one, so a peer
    /// that is not an attach listener is caught at its first bytes, not after <see cref="MaxResponseBytes"/> or its EOF.
    /// </summary>
    internal static bool CheckStatusLine(int pid, ReadOnlySpan<byte> received)
    {
        var newline = received.IndexOf((byte)'\n');
        // The longest status line is MaxStatusChars digits and a '\r'.
        if (newline < 0 && received.Length <= MaxStatusChars + 1) return false;
        _ = ParseStatus(pid, received, newline);
        return true;
    }

    private static int ParseStatus(int pid, ReadOnlySpan<byte> body, int newline)
    {
        var statusBytes = newline < 0 ? body : body[..newline];
        if (statusBytes.Length > 0 && statusBytes[^1] == (byte)'\r') statusBytes = statusBytes[..^1];
        if (statusBytes.Length is 0 or > MaxStatusChars
            || !int.TryParse(Encoding.ASCII.GetString(statusBytes), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var status))
        {
            throw new AttachException(AttachFailure.ProtocolError, pid,
                $"process {pid} answered on its attach socket with something that is not an attach response (expected a decimal status line): {Printable(body[..Math.Min(body.Length, 64)])}");
        }

        return status;
    }

    /// <summary>
    /// Maps an errno from kill(2), connect(2) or a file operation to a failure; exposed for tests because a
    /// root caller cannot provoke EPERM/EACCES against a real JVM.
    /// </summary>
    internal static AttachException FailureFromErrno(int pid, int errno, string operation, Exception? inner = null) => errno switch
    {
        NativeMethods.EPERM or 13 /* EACCES */ => new AttachException(AttachFailure.PermissionDenied, pid,
            $"permission denied while {operation} for process {pid}: the JVM only accepts its own user or root; attach (run the collector) as the JVM's user or as root", inner),
        NativeMethods.ESRCH => new AttachException(AttachFailure.ProcessExited, pid, $"process {pid} exited while {operation}", inner),
        _ => new AttachException(AttachFailure.ProtocolError, pid, $"{operation} for process {pid} failed with errno {errno}", inner),
    };

    private static async Task<Socket> ConnectAsync(Target target, Progress progress, CancellationToken token)
    {
        var socketPath = Path.Combine(target.TmpDir, ".java_pid" + target.Status.NamespacePid.ToString(CultureInfo.InvariantCulture));

        // A listener that is already running needs no signal: this is the path of every request but the first.
        progress.Step = "connecting to " + socketPath;
        var existing = await TryConnectAsync(target, socketPath, token).ConfigureAwait(false);
        if (existing != null) return existing;
        if (NativeMethods.OpensAsFile(socketPath))
        {
            // The JVM's listener only re-creates a missing path: a file already there blocks it (jcmd fails too).
            progress.Hint = $"; {socketPath} exists but is not a socket (a stale or planted file): the JVM will not replace it while its listener runs, so remove it";
        }

        await CheckBeforeSignalAsync(target, token).ConfigureAwait(false);
        var trigger = CreateTriggerFile(target);
        try
        {
            progress.Step = "sending SIGQUIT";
            if (NativeMethods.Kill(target.Pid, ProcessStatus.Sigquit) != 0)
                throw FailureFromErrno(target.Pid, Marshal.GetLastPInvokeError(), "sending SIGQUIT");

            progress.Step = "waiting for the JVM to create " + socketPath + " after SIGQUIT";
            var delay = TimeSpan.FromMilliseconds(10);
            while (true)
            {
                await Task.Delay(delay, token).ConfigureAwait(false);
                var socket = await TryConnectAsync(target, socketPath, token).ConfigureAwait(false);
                if (socket != null) return socket;
                var status = target.ReadStatusOrNull();
                if (status is null || status.HasExited)
                    throw new AttachException(AttachFailure.ProcessExited, target.Pid, $"process {target.Pid} exited while its attach listener was starting");
                if (delay < TimeSpan.FromMilliseconds(500)) delay *= 2;
            }
        }
        finally
        {
            // Always remove the trigger: a stale one would make a later SIGQUIT (a thread dump) start a listener.
            TryDelete(trigger);
        }
    }

    /// <summary>Connects when the socket exists and accepts; null when there is no live listener behind the path.</summary>
    private static async Task<Socket?> TryConnectAsync(Target target, string socketPath, CancellationToken token)
    {
        if (!File.Exists(socketPath)) return null;
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), token).ConfigureAwait(false);
            return socket;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.AddressNotAvailable)
        {
            // A stale socket file (the listener is gone, or the file is not a socket): wake the listener again.
            socket.Dispose();
            return null;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AccessDenied)
        {
            socket.Dispose();
            throw FailureFromErrno(target.Pid, 13, "connecting to " + socketPath, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Refuses to signal a process that SIGQUIT would not wake or would harm: not a JVM (SIGQUIT's default
    /// action kills it), attach disabled, SIGQUIT ignored or unhandled, or another user's JVM when we are not root.
    /// </summary>
    private static async Task CheckBeforeSignalAsync(Target target, CancellationToken token)
    {
        var pid = target.Pid;
        var status = target.Status;
        if (status.HasExited) throw new AttachException(AttachFailure.ProcessExited, pid, $"process {pid} has exited");
        var ourUid = NativeMethods.GetEffectiveUid();
        if (ourUid != 0 && ourUid != (uint)status.EffectiveUid)
        {
            throw new AttachException(AttachFailure.PermissionDenied, pid,
                $"permission denied: process {pid} runs as uid {status.EffectiveUid} and this process as uid {ourUid}; a JVM only accepts attach from its own user or root, so attach (run the collector) as root or as that user; it was not signalled");
        }

        // The java launcher maps libjvm.so a moment after exec: give a just-started launcher that moment.
        var launcherDeadline = DateTime.UtcNow + SignalSettleTime;
        while (!target.MapsLibJvm() && target.IsJavaLauncher() && DateTime.UtcNow < launcherDeadline)
            await Task.Delay(50, token).ConfigureAwait(false);
        if (!target.MapsLibJvm())
            throw new AttachException(AttachFailure.NotAJvm, pid, $"process {pid} is not a HotSpot JVM (no libjvm.so in /proc/{pid}/maps); it was not signalled");

        var attachSupported = JvmCapabilities.TryReadAttachSupported(target.TmpDir, status.NamespacePid);
        var flags = target.ReadJvmOptionText();
        if (attachSupported == false || LastBooleanFlag(flags, "DisableAttachMechanism") == true)
        {
            throw new AttachException(AttachFailure.AttachDisabled, pid,
                $"JVM {pid} was started with -XX:+DisableAttachMechanism: it accepts no attach requests until restarted without that option");
        }

        // A starting JVM still shows the signal dispositions it inherited (a background job's SIGQUIT is
        // ignored) until it installs its own handler: give it a moment before concluding.
        var settle = DateTime.UtcNow + SignalSettleTime;
        while (!(status.CatchesSigquit && !status.IgnoresSigquit) && DateTime.UtcNow < settle)
        {
            await Task.Delay(50, token).ConfigureAwait(false);
            status = Target.TryReadStatus(pid) ?? throw new AttachException(AttachFailure.ProcessExited, pid, $"process {pid} exited");
            if (status.HasExited) throw new AttachException(AttachFailure.ProcessExited, pid, $"process {pid} has exited");
        }

        var reducedSignals = flags.Contains("-Xrs", StringComparison.Ordinal);
        if (status.IgnoresSigquit)
        {
            throw new AttachException(AttachFailure.SigquitIgnored, pid,
                $"the JVM ignores SIGQUIT (process {pid}, SigIgn bit 3 in /proc/{pid}/status), typically because it was started in the background by a non-interactive shell; start it from a service manager or after `set -m`"
                + (reducedSignals ? "; it also runs with -Xrs, so it never installs its own SIGQUIT handler" : string.Empty));
        }

        if (!status.CatchesSigquit)
        {
            // Without a handler SIGQUIT terminates the process: never send it.
            throw reducedSignals
                ? new AttachException(AttachFailure.AttachDisabled, pid, $"JVM {pid} runs with -Xrs (no SIGQUIT handler), so its attach listener cannot be started and SIGQUIT would kill it")
                : new AttachException(AttachFailure.Timeout, pid, $"JVM {pid} has no SIGQUIT handler yet (still starting?); try again later");
        }
    }

    /// <summary>Value of the last -XX:+Name / -XX:-Name in the text (later options win), or null when absent.</summary>
    internal static bool? LastBooleanFlag(string options, string name)
    {
        var plus = options.LastIndexOf("-XX:+" + name, StringComparison.Ordinal);
        var minus = options.LastIndexOf("-XX:-" + name, StringComparison.Ordinal);
        if (plus < 0 && minus < 0) return null;
        return plus > minus;
    }

    private static string CreateTriggerFile(Target target)
    {
        var name = ".attach_pid" + target.Status.NamespacePid.ToString(CultureInfo.InvariantCulture);
        // HotSpot looks in its working directory first, then in its tmp dir; the cwd may be read-only.
        foreach (var dir in new[] { $"/proc/{target.Pid}/cwd", target.TmpDir })
        {
            var path = Path.Combine(dir, name);
            try
            {
                using (new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.ReadWrite)) { }
                return path;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Try the next location.
            }
        }

        throw new AttachException(AttachFailure.PermissionDenied, target.Pid,
            $"cannot create the attach trigger file {name} in the working directory or tmp dir of process {target.Pid}");
    }

    private static async Task SendAllAsync(Socket socket, ReadOnlyMemory<byte> data, CancellationToken token)
    {
        while (!data.IsEmpty)
        {
            var sent = await socket.SendAsync(data, SocketFlags.None, token).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    private async Task<byte[]> ReceiveToEndAsync(Target target, Socket socket, CancellationToken token)
    {
        using var body = new MemoryStream();
        var buffer = new byte[64 * 1024];
        var statusChecked = false;
        try
        {
            while (true)
            {
                var read = await socket.ReceiveAsync(buffer, SocketFlags.None, token).ConfigureAwait(false);
                if (read == 0) break;
                if (body.Length + read > MaxResponseBytes)
                {
                    throw new AttachException(AttachFailure.ProtocolError, target.Pid,
                        $"the response of process {target.Pid} exceeds the {MaxResponseBytes}-byte limit");
                }

                body.Write(buffer, 0, read);
                if (!statusChecked) statusChecked = CheckStatusLine(target.Pid, body.GetBuffer().AsSpan(0, (int)body.Length));
            }
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown)
        {
            if (await target.HasExitedSoonAsync(token).ConfigureAwait(false))
                throw new AttachException(AttachFailure.ProcessExited, target.Pid, $"JVM {target.Pid} exited before it finished answering", e);
            throw new AttachException(AttachFailure.ProtocolError, target.Pid, $"JVM {target.Pid} reset the attach connection", e);
        }

        if (body.Length == 0 && await target.HasExitedSoonAsync(token).ConfigureAwait(false))
            throw new AttachException(AttachFailure.ProcessExited, target.Pid, $"JVM {target.Pid} exited before it answered");
        return body.ToArray();
    }

    private static AttachException TimeoutFailure(int pid, TimeSpan timeout, string step)
    {
        var status = Target.TryReadStatus(pid);
        if (status is null || status.HasExited)
            return new AttachException(AttachFailure.ProcessExited, pid, $"process {pid} exited while {step}");
        var hint = status.State == 'T' ? " (the process is stopped: SIGSTOP or a debugger)" : string.Empty;
        return new AttachException(AttachFailure.Timeout, pid, $"timed out after {timeout.TotalSeconds:0.###} s while {step} for JVM {pid}{hint}");
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the JVM or another attacher may have removed it already.
        }
    }

    private static string Truncate(string s, int max) => s.Length <= max ? s : s[..max] + "...";

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length + 2).Append('"');
        foreach (var b in bytes)
        {
            if (b is >= 0x20 and < 0x7f) sb.Append((char)b);
            else sb.Append(CultureInfo.InvariantCulture, $"\\x{b:x2}");
        }

        return sb.Append('"').ToString();
    }

    /// <summary>Which step a request is in, so that a timeout says where it stuck.</summary>
    private sealed class Progress
    {
        public string Step { get; set; } = "reading /proc";

        public string Hint { get; set; } = string.Empty;
    }

    /// <summary>The target process as seen through /proc: host pid, status and the tmp dir it sees.</summary>
    private sealed record Target(int Pid, ProcessStatus Status, string TmpDir)
    {
        public static Target Read(int pid)
        {
            var status = TryReadStatus(pid)
                ?? throw new AttachException(AttachFailure.ProcessNotFound, pid, $"no process with pid {pid}");
            // The JVM's /tmp is its mount namespace's: reachable through /proc/<pid>/root for a container.
            var rootTmp = $"/proc/{pid}/root/tmp";
            var tmp = Directory.Exists(rootTmp) ? rootTmp : "/tmp";
            return new Target(pid, status, tmp);
        }

        public static ProcessStatus? TryReadStatus(int pid)
        {
            string text;
            try
            {
                text = File.ReadAllText($"/proc/{pid}/status");
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or IOException)
            {
                return null;
            }

            return ProcessStatus.Parse(text, pid);
        }

        public ProcessStatus? ReadStatusOrNull() => TryReadStatus(Pid);

        /// <summary>After a connection ended early: whether the process is exiting or gone (waits briefly for the kernel).</summary>
        public async Task<bool> HasExitedSoonAsync(CancellationToken token)
        {
            for (var i = 0; i < 20; i++)
            {
                if (IsExiting(Pid)) return true;
                await Task.Delay(50, token).ConfigureAwait(false);
            }

            return false;
        }

        /// <summary>
        /// True when the process is gone, a zombie, or inside exit(): the kernel sets PF_EXITING (0x4 in the
        /// flags field of /proc/&lt;pid&gt;/stat) before it closes the process's sockets, so this is already
        /// true when the peer's close reaches us, however slowly a large heap is unmapped.
        /// </summary>
        private static bool IsExiting(int pid)
        {
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return true;
            }

            // "pid (comm) state ppid pgrp session tty_nr tpgid flags ..."; comm may contain spaces and parentheses.
            var fields = stat[(stat.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 7) return false;
            if (fields[0] is "Z" or "X" or "x") return true;
            return ulong.TryParse(fields[6], NumberStyles.None, CultureInfo.InvariantCulture, out var flags) && (flags & 0x4) != 0;
        }

        /// <summary>Whether libjvm.so is mapped: the check that keeps SIGQUIT away from processes it would kill.</summary>
        public bool MapsLibJvm()
        {
            try
            {
                foreach (var line in File.ReadLines($"/proc/{Pid}/maps"))
                {
                    if (line.EndsWith("/libjvm.so", StringComparison.Ordinal)) return true;
                }

                return false;
            }
            catch (UnauthorizedAccessException e)
            {
                throw FailureFromErrno(Pid, 13, $"reading /proc/{Pid}/maps", e);
            }
            catch (IOException)
            {
                throw new AttachException(AttachFailure.ProcessExited, Pid, $"process {Pid} exited");
            }
        }

        /// <summary>Whether the executable is named java (the launcher, which loads libjvm.so after it starts).</summary>
        public bool IsJavaLauncher()
        {
            try
            {
                return Path.GetFileName(File.ResolveLinkTarget($"/proc/{Pid}/exe", returnFinalTarget: false)?.FullName) == "java";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return false;
            }
        }

        /// <summary>JVM options in the order HotSpot applies them (later wins): JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS, command line, _JAVA_OPTIONS.</summary>
        public string ReadJvmOptionText()
        {
            var sb = new StringBuilder();
            try
            {
                var environ = File.ReadAllText($"/proc/{Pid}/environ").Split('\0');
                string Variable(string name) =>
                    environ.LastOrDefault(e => e.StartsWith(name + "=", StringComparison.Ordinal)) ?? string.Empty;
                sb.Append(Variable("JAVA_TOOL_OPTIONS")).Append(' ').Append(Variable("JDK_JAVA_OPTIONS")).Append(' ')
                    .Append(File.ReadAllText($"/proc/{Pid}/cmdline").Replace('\0', ' ')).Append(' ')
                    .Append(Variable("_JAVA_OPTIONS"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Unknown options: the hsperfdata capability and the timeout still report the cause.
            }

            return sb.ToString();
        }
    }
}
