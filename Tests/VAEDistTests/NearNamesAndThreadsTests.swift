import Testing
import VAEData
import VAECheckpoint
import VAETraining

@Suite struct NearNamesTests {
    @Test func typosFindTheName() {
        let commands = ["train", "eval", "sample", "inspect", "encode", "latent-map"]
        #expect(nearestName("trian", among: commands) == "train")     // a swap
        #expect(nearestName("tran", among: commands) == "train")      // a deletion
        #expect(nearestName("evl", among: commands) == "eval")
        #expect(nearestName("latentmap", among: commands) == "latent-map")
        #expect(nearestName("synthtic", among: ["synthetic", "dsprites"]) == "synthetic")
        #expect(nearestName("dsprite", among: ["synthetic", "dsprites"]) == "dsprites")
    }

    @Test func unrelatedWordsFindNothing() {
        #expect(nearestName("mydata", among: ["synthetic", "dsprites"]) == nil)
        #expect(nearestName("xy", among: ["train", "eval"]) == nil)
        #expect(nearestName("runs", among: ["train", "eval", "sample"]) == nil)
    }

    @Test func editDistanceCountsSwapsAsOne() {
        #expect(editDistance("ab", "ba") == 1)
        #expect(editDistance("kitten", "sitting") == 3)
        #expect(editDistance("", "abc") == 3)
    }
}

@Suite struct ThreadSettingTests {
    @Test func environmentGivesThreadsWhenTheOptionDoesNot() {
        #expect(environmentThreadCount(environment: [:]) == nil)
        #expect(environmentThreadCount(environment: ["OMP_NUM_THREADS": "3"])?.count == 3)
        #expect(environmentThreadCount(environment: ["OMP_NUM_THREADS": "4,2"])?.count == 4)
        #expect(environmentThreadCount(environment: ["OMP_NUM_THREADS": "0"]) == nil)
        #expect(environmentThreadCount(environment: ["VAE_DIST_THREADS": "2", "OMP_NUM_THREADS": "5"])?.name == "VAE_DIST_THREADS")
        #expect(automaticThreadCount(environment: ["OMP_NUM_THREADS": "7"]) == 7)
    }

    @Test func warnsOnlyAboveTheCores() {
        var options = TrainingOptions()
        #expect(options.threadsWarning(environment: [:], cores: 2) == nil)
        options.threads = 2
        #expect(options.threadsWarning(environment: [:], cores: 2) == nil)
        options.threads = 64
        #expect(options.threadsWarning(environment: [:], cores: 2)?.hasPrefix("warning: --threads 64 asks for more threads than the 2 cores") == true)
        options.threads = 0
        #expect(options.threadsWarning(environment: ["OMP_NUM_THREADS": "8"], cores: 4)?.contains("OMP_NUM_THREADS=8") == true)
    }
}
