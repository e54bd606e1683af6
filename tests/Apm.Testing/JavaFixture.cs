using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Apm.Testing;

/// <summary>
/// A real JVM running one of the Java programs under tests/fixtures/java, compiled with javac on first use.
/// Started through <see cref="Process"/> (never a background shell job: those ignore SIGQUIT and never
/// answer the attach handshake). Disposing kills the JVM and waits for it.
/// </summary>
public sealed partial class JavaFixture : IDisposable
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> CompiledDirs = new();
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly object _gate = new();

    private JavaFixture(Process process, string mainClass)
    {
        _process = process;
        MainClass = mainClass;
    }

    public string MainClass { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public Process Process => _process;

    /// <summary>What the program printed so far on stdout.</summary>
    public string Stdout { get { lock (_gate) { return _stdout.ToString(); } } }

    public string Stderr { get { lock (_gate) { return _stderr.ToString(); } } }

    /// <summary>Directory holding the fixture sources copied beside the test assembly.</summary>
    public static string SourceDirectory => Path.Combine(AppContext.BaseDirectory, "fixtures", "java");

    /// <summary>
    /// Compiles (once per process) and starts <paramref name="mainClass"/> from tests/fixtures/java/&lt;mainClass&gt;.java.
    /// </summary>
    /// <param name="mainClass">Simple class name; the file of the same name is compiled with every other fixture file.</param>
    /// <param name="jvmOptions">Options before the class name, e.g. "-Xmx256m".</param>
    /// <param name="programArgs">Arguments after the class name.</param>
    public static JavaFixture Start(string mainClass, IEnumerable<string>? jvmOptions = null, IEnumerable<string>? programArgs = null,
        IDictionary<string, string>? environment = null)
    {
        var classDir = CompiledDirs.GetOrAdd(SourceDirectory, dir => new Lazy<string>(() => Compile(dir))).Value;
        var psi = new ProcessStartInfo("java")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add("-cp");
        psi.ArgumentList.Add(classDir);
        foreach (var o in jvmOptions ?? []) psi.ArgumentList.Add(o);
        psi.ArgumentList.Add(mainClass);
        foreach (var a in programArgs ?? []) psi.ArgumentList.Add(a);
        if (environment != null)
        {
            foreach (var (k, v) in environment) psi.Environment[k] = v;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException("java did not start");
        var fixture = new JavaFixture(process, mainClass);
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (fixture._gate) fixture._stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (fixture._gate) fixture._stderr.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return fixture;
    }

    /// <summary>Waits until the program printed a line containing <paramref name="text"/> (fixtures print "READY").</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Stdout.Contains(text, StringComparison.Ordinal)) return;
            if (_process.HasExited)
                throw new InvalidOperationException($"{MainClass} exited with {_process.ExitCode} before printing '{text}': {Stderr}");
            await Task.Delay(50).ConfigureAwait(false);
        }

        throw new TimeoutException($"{MainClass} did not print '{text}' within {timeout}; stdout: {Stdout}; stderr: {Stderr}");
    }

    /// <summary>Waits until the JVM's hsperfdata file exists (the collector can see it).</summary>
    public async Task WaitForPerfDataAsync(TimeSpan timeout)
    {
        var path = PerfDataPath;
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (File.Exists(path) && new FileInfo(path).Length > 0) return;
            if (_process.HasExited) throw new InvalidOperationException($"{MainClass} exited: {Stderr}");
            await Task.Delay(50).ConfigureAwait(false);
        }

        throw new TimeoutException($"no hsperfdata file {path}");
    }

    /// <summary>/tmp/hsperfdata_&lt;user&gt;/&lt;pid&gt; of this JVM.</summary>
    public string PerfDataPath => Path.Combine("/tmp",
        "hsperfdata_" + Environment.UserName, Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Writes a line to the program's stdin (fixtures read commands such as "stop-growth").</summary>
    public void Send(string line)
    {
        _process.StandardInput.WriteLine(line);
        _process.StandardInput.Flush();
    }

    /// <summary>Runs a JDK tool (jcmd, jstat) against this JVM and returns its stdout; the test oracle.</summary>
    public string Jcmd(params string[] args) => RunTool("jcmd", [Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), .. args]);

    public static string RunTool(string tool, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException(tool + " did not start");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromSeconds(60)))
        {
            p.Kill(true);
            throw new TimeoutException($"{tool} {string.Join(' ', psi.ArgumentList)} timed out");
        }

        if (p.ExitCode != 0) throw new InvalidOperationException($"{tool} exited {p.ExitCode}: {stderr.Result}{stdout.Result}");
        return stdout.Result;
    }

    /// <summary>
    /// Stops every thread of the JVM (SIGSTOP) until <see cref="Resume"/>: how a test holds a JVM in the middle of a
    /// request (its attach socket still accepts connections; the kernel queues the request).
    /// </summary>
    public void Pause() => Signals.Send(Pid, Signals.Stop);

    /// <summary>Lets a JVM stopped by <see cref="Pause"/> run on (SIGCONT).</summary>
    public void Resume() => Signals.Send(Pid, Signals.Cont);

    /// <summary>
    /// Whether the JVM has a file descriptor open on <paramref name="path"/> (a deleted file too: its link then ends in
    /// " (deleted)"): whether it is still writing a file, seen from outside.
    /// </summary>
    public bool HoldsOpen(string path)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries($"/proc/{Pid}/fd")
                .Select(fd => new FileInfo(fd).LinkTarget)
                .Any(t => t == path || t == path + " (deleted)");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(true);
            }

            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException)
        {
        }

        DeleteAttachSocket(Pid);
    }

    /// <summary>
    /// Removes /tmp/.java_pid&lt;pid&gt; of a JVM that was killed: a JVM only removes its attach socket when it exits
    /// normally, so every killed fixture that was attached to would leave one behind.
    /// </summary>
    public static void DeleteAttachSocket(int pid)
    {
        try
        {
            File.Delete("/tmp/.java_pid" + pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort.
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private static string Compile(string sourceDir)
    {
        var files = Directory.GetFiles(sourceDir, "*.java", SearchOption.AllDirectories);
        if (files.Length == 0) throw new InvalidOperationException("no Java fixtures in " + sourceDir);
        var outDir = Path.Combine(Path.GetTempPath(), "apm-java-fixtures-" + Environment.ProcessId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(outDir);
        RunTool("javac", ["-nowarn", "-d", outDir, .. files], TimeSpan.FromMinutes(3));
        // The classes are shared by every fixture of this test process: remove them when it ends.
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(outDir, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return outDir;
    }
}
