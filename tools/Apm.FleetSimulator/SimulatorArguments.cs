using System.Globalization;

namespace Apm.FleetSimulator;

/// <summary>Command-line settings of the simulator; <see cref="Parse"/> rejects bad input with a reason.</summary>
public sealed record SimulatorArguments
{
    /// <summary>Usage text printed on --help and on bad input.</summary>
    public const string Usage = """
        usage: apm-fleet-simulator [options]
          --jvms N                 simulated JVMs (default 1000)
          --interval SECONDS       sample interval of every JVM (default 5): rate = jvms / interval samples/s
          --duration SECONDS       how long to publish; 0 = until Ctrl+C (default 60)
          --leaking PERCENT        share of leaking JVMs (default 5)
          --restarting PERCENT     share of JVMs that restart every ~60 samples (default 5)
          --jvms-per-host N        JVMs per simulated host name (default 20)
          --seed N                 random seed (default 1)
          --bootstrap HOST:PORT    a Kafka cluster; without it an embedded (mock) cluster is started and its address printed
          --brokers N              brokers of the embedded cluster (default 1)
          --partitions N           partitions of Apm's topics on the embedded cluster (default 6)
        """;

    public int Jvms { get; init; } = 1000;

    public TimeSpan Interval { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(60);

    public double LeakingPercent { get; init; } = 5;

    public double RestartingPercent { get; init; } = 5;

    public int JvmsPerHost { get; init; } = 20;

    public int Seed { get; init; } = 1;

    public string? BootstrapServers { get; init; }

    public int Brokers { get; init; } = 1;

    public int Partitions { get; init; } = 6;

    public bool Help { get; init; }

    /// <summary>Samples per second the whole fleet produces.</summary>
    public double SamplesPerSecond => Jvms / Interval.TotalSeconds;

    /// <summary>Parses the arguments.</summary>
    /// <exception cref="ArgumentException">An unknown option, a missing value, or a value out of range (the message says which).</exception>
    public static SimulatorArguments Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var a = new SimulatorArguments();
        for (var i = 0; i < args.Count; i++)
        {
            var name = args[i];
            if (name is "--help" or "-h")
            {
                a = a with { Help = true };
                continue;
            }

            if (i + 1 >= args.Count) throw new ArgumentException($"{name} needs a value");
            var value = args[++i];
            a = name switch
            {
                "--jvms" => a with { Jvms = Int(name, value, 1, 1_000_000) },
                "--interval" => a with { Interval = TimeSpan.FromSeconds(Number(name, value, 0.01, 3600)) },
                "--duration" => a with { Duration = TimeSpan.FromSeconds(Number(name, value, 0, 7 * 86400)) },
                "--leaking" => a with { LeakingPercent = Number(name, value, 0, 100) },
                "--restarting" => a with { RestartingPercent = Number(name, value, 0, 100) },
                "--jvms-per-host" => a with { JvmsPerHost = Int(name, value, 1, 1_000_000) },
                "--seed" => a with { Seed = Int(name, value, int.MinValue, int.MaxValue) },
                "--bootstrap" => a with { BootstrapServers = string.IsNullOrWhiteSpace(value) ? throw new ArgumentException("--bootstrap needs host:port") : value },
                "--brokers" => a with { Brokers = Int(name, value, 1, 16) },
                "--partitions" => a with { Partitions = Int(name, value, 1, 1000) },
                _ => throw new ArgumentException($"unknown option {name}"),
            };
        }

        if (a.LeakingPercent + a.RestartingPercent > 100) throw new ArgumentException("--leaking and --restarting add up to more than 100");
        return a;
    }

    private static int Int(string name, string value, int min, int max) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ArgumentException($"{name} must be an integer from {min} to {max}, not '{value}'");

    private static double Number(string name, string value, double min, double max) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ArgumentException($"{name} must be a number from {min} to {max}, not '{value}'");
}
