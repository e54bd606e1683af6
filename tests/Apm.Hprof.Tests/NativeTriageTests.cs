using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;

namespace Apm.Hprof.Tests;

/// <summary>
/// The NativeAOT <c>apm-triage</c> executable (src/Apm.Triage, what <c>./apm triage</c> runs) against the in-process
/// <see cref="TriageCommand"/>: published once for the class (about a minute), then run on a real dump and a damaged one.
/// </summary>
public sealed class NativeTriageTests : IClassFixture<NativeTriageTests.Published>
{
    private readonly Published _published;

    public NativeTriageTests(Published published) => _published = published;

    [Fact]
    public async Task The_native_executable_writes_the_same_report_and_output_as_the_in_process_command()
    {
        var dir = _published.Dir;
        var dump = await RealDumpTests.DumpAsync("CancelTimerLeak", 2_000, dir);
        var inProcess = await RunInProcess(dump, "--json", Path.Combine(dir, "in.json"));
        // The leading "triage" is accepted too, as `apm triage` takes it.
        var native = RunNative("triage", dump, "--json", Path.Combine(dir, "native.json"));

        Assert.Equal(0, inProcess.Code);
        Assert.Equal(inProcess.Code, native.Code);
        Assert.Equal(inProcess.Err, native.Err);
        Assert.Equal(inProcess.Out.Replace(Path.Combine(dir, "in.json"), "R", StringComparison.Ordinal), native.Out.Replace(Path.Combine(dir, "native.json"), "R", StringComparison.Ordinal));
        var expected = WithoutTimings(await File.ReadAllTextAsync(Path.Combine(dir, "in.json")));
        var actual = WithoutTimings(await File.ReadAllTextAsync(Path.Combine(dir, "native.json")));
        Assert.Contains("timer-retained-finalizable", expected, StringComparison.Ordinal);
        Assert.Equal(expected, actual);
    }

    [Fact]
    public async Task The_native_executable_exits_with_the_same_code_and_message_on_a_truncated_dump_and_bad_usage()
    {
        var dump = Path.Combine(_published.Dir, "truncated.hprof");
        await File.WriteAllBytesAsync(dump, SyntheticDumpTests.BuildSample(8, true).Bytes[..^7]);
        var inProcess = await RunInProcess(dump);
        var native = RunNative(dump);
        Assert.Equal(TriageCommand.Truncated, inProcess.Code);
        Assert.Equal(inProcess.Code, native.Code);
        Assert.Equal(inProcess.Err, native.Err);

        inProcess = await RunInProcess();
        native = RunNative();
        Assert.Equal(TriageCommand.Usage, inProcess.Code);
        Assert.Equal((inProcess.Code, inProcess.Err), (native.Code, native.Err));
    }

    private static string WithoutTimings(string json)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        Assert.True(node.Remove("timings"));
        return node.ToJsonString();
    }

    private static async Task<(int Code, string Out, string Err)> RunInProcess(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = await TriageCommand.RunAsync(args, o, e, false, CancellationToken.None);
        return (code, o.ToString(), e.ToString());
    }

    private (int Code, string Out, string Err) RunNative(params string[] args) => Published.Run(_published.Executable, args);

    /// <summary>Publishes src/Apm.Triage with NativeAOT into a temporary directory, once for the test class.</summary>
    public sealed class Published : IDisposable
    {
        public Published()
        {
            Dir = Directory.CreateTempSubdirectory("apm-native-triage-").FullName;
            var root = new DirectoryInfo(AppContext.BaseDirectory);
            while (root != null && !File.Exists(Path.Combine(root.FullName, "Apm.sln"))) root = root.Parent;
            var project = Path.Combine(root?.FullName ?? throw new InvalidOperationException("Apm.sln not found above the test binaries"), "src", "Apm.Triage", "Apm.Triage.csproj");
            var output = Path.Combine(Dir, "aot");
            var (code, stdout, stderr) = Run("dotnet", ["publish", project, "-c", "Release", "-r", RuntimeInformation.RuntimeIdentifier, "-o", output, "-nologo", "--disable-build-servers"]);
            if (code != 0) throw new InvalidOperationException($"dotnet publish of apm-triage exited {code}: {stdout}{stderr}");
            Executable = Path.Combine(output, "apm-triage");
            Assert.True(File.Exists(Executable), "the publish produced no native apm-triage");
            Assert.False(File.Exists(Path.Combine(output, "apm-triage.dll")), "the publish should produce a native executable, not an assembly");
        }

        public string Dir { get; }

        public string Executable { get; }

        public void Dispose() => Directory.Delete(Dir, true);

        internal static (int Code, string Out, string Err) Run(string file, IEnumerable<string> args)
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi) ?? throw new InvalidOperationException(file + " did not start");
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            // A guard against a hang, not a speed check: publishing takes about a minute on a busy 2-core machine.
            if (!p.WaitForExit(TimeSpan.FromMinutes(15)))
            {
                p.Kill(true);
                throw new TimeoutException(file + " did not finish");
            }

            return (p.ExitCode, stdout.Result, stderr.Result);
        }
    }
}
