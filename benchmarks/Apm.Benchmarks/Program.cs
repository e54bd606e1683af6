namespace Apm.Benchmarks;

/// <summary>
/// Benchmarks that print ratios against a baseline measured in the same run:
/// dotnet run -c Release --project benchmarks/Apm.Benchmarks -- collector|attach|hprof [args]
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var name = args.Length > 0 ? args[0] : string.Empty;
        var rest = args.Length > 0 ? args[1..] : [];
        switch (name)
        {
            case "collector":
                return CollectorCostBenchmark.Run(rest);
            case "attach":
                return AttachBenchmark.Run(rest);
            case "hprof":
                return HprofBenchmark.Run(rest);
            case "dashboard":
                return DashboardBenchmark.Run(rest);
            case "load":
                return LoadBenchmark.Run(rest);
            case "rules":
                return RuleMemoryBenchmark.Run(rest);
            case "soak":
                return FleetSoak.Run(rest);
            case "scaleout":
                return ScaleOutBenchmark.Run(rest);
            default:
                Console.Error.WriteLine("usage: Apm.Benchmarks collector|attach|hprof|dashboard|load|rules|scaleout|soak [args]");
                Console.Error.WriteLine("  collector  CPU per JVM sample vs `jstat -gc`, and memory with 20 JVMs");
                Console.Error.WriteLine("  attach     GC.finalizer_info through our client vs `jcmd`, safepoints added per sampling kind");
                Console.Error.WriteLine("  hprof      full triage vs a plain read of the dump and vs VisualVM's heap library");
                Console.Error.WriteLine("  load       one aggregator's sustained samples/s vs raw InfluxDB writes, and latency [--seconds N] [--jvms N]");
                Console.Error.WriteLine("  rules      CPU per message and memory per JVM of the leak rules for an hour of samples [--jvms N]");
                Console.Error.WriteLine("  scaleout   the gain of a second aggregator, each capped at --cores C (0.3) by a CPU cgroup (root) [--members N]");
                Console.Error.WriteLine("  soak       every service in its own process at a steady rate for --minutes N (60): memory trends, lag [--rate N] [--aggregators N] [--rule-window MIN]");
                return 2;
        }
    }
}
