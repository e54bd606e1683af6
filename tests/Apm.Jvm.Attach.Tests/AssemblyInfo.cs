// The JVM tests start several JVMs each; the machine has two cores shared with other work.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
