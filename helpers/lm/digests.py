"""SHA-256 digests and sizes of the files :mod:`helpers.lm.data` extracts from ``chinese-poetry@2.0.1``.

Generated once from the npm tarball (whose own sha512 integrity is checked first); every cached file
must match its entry here before it is read. Paths are relative to the tarball's ``package/dist/``.
"""

FILES: dict[str, tuple[int, str]] = {
    "quantangshi/poet.tang.0.json": (408405, "4f88f429938082523cdc72a1612bd7a7c3e3f7a33f8192c61ae51340efc3c92d"),
    "quantangshi/poet.tang.1000.json": (477519, "6e703b8d8dcedbd6110f6d48d043665ca2131db2035a5bfcef5e59a19aeb6d75"),
    "quantangshi/poet.tang.2000.json": (417948, "ec28efa7e2ae9cdbbba09f0ed186e32ccae47a325ad1e5816b7ad56071c1665a"),
    "quantangshi/poet.tang.3000.json": (453811, "9e4ba2323752b6b9fbdba875cdbc6a26636fe0cabc85fd066370d4915952001f"),
    "quantangshi/poet.tang.4000.json": (488655, "b8a7946c879b9658a6c667a4c55f776fae7e5e00a17789ab06b274c1429afc66"),
    "quantangshi/poet.tang.5000.json": (467225, "a0306e6962cff01639ad9a00b042a201b8dec1f30fa5d768a7b112589887861e"),
    "quantangshi/poet.tang.6000.json": (470031, "982a21d2b15922b406911f1c825785054314c686da86b2155d7aebb362d22771"),
    "quantangshi/poet.tang.7000.json": (474558, "a6fb69d7b4343c904dc56ae5aae34facc2478d196b51c37ceba9d1e2f171b342"),
    "quantangshi/poet.tang.8000.json": (574248, "ac3848e95b02736168003863795de4474838c2d6a71a24ca2a4a280ea5177773"),
    "quantangshi/poet.tang.9000.json": (476882, "b99d6596e3a1fe1a661652383083f92d196b8baf4e461d087081d5e1e1b7a51f"),
    "quantangshi/poet.tang.10000.json": (613029, "b97d1c5509ab62f5b433dee2020c11c4deda4542e276683d1ada6619c34c2113"),
    "quantangshi/poet.tang.11000.json": (445111, "9adf1835246053c821d99af39ce9092e14a94e1baf91740098bd9fc6f6f1cd27"),
    "quantangshi/poet.tang.12000.json": (440019, "ec43d055a219d52ecdb58cd30a8a444189392f0d68b92a41495df1c72c5fd095"),
    "quantangshi/poet.tang.13000.json": (420898, "eb9c85072d7913bb972e07c72f0123e9d7addca22cfd833cb79a5d74b1c76ebf"),
    "quantangshi/poet.tang.14000.json": (409199, "1e366dd3fb5a011091524bed36e4edff5d015bf0ddb14143f298515387dbd9a9"),
    "quantangshi/poet.tang.15000.json": (422310, "0386e58f46517daa3af0e0f385e0223f1efc0dac53afbe8fea64f99074d870b7"),
    "quantangshi/poet.tang.16000.json": (380057, "1c477aef1fc50523f9baf10f29d2d89201a14c4c73001c1c041d0fe8464d11db"),
    "quantangshi/poet.tang.17000.json": (485658, "11bac8333b2042975b9844423d113ff2c6fdf701c8b08a5b3aaa6bc9472222de"),
    "quantangshi/poet.tang.18000.json": (537556, "37543a147d16e3576d5f45ba8f7b8b51fc311bc10eddae9440f16f2d5ae885c2"),
    "quantangshi/poet.tang.19000.json": (431381, "dea74b41bc807ce2527bb119862a251e3a92b6f69bdf9f98b1434a8336830542"),
    "quantangshi/poet.tang.20000.json": (477671, "8ccf0783888b15bec60d0253e278cd4b67e94a77725df8ed079d4d8062d050b4"),
    "quantangshi/poet.tang.21000.json": (572847, "bddae814c82bf6a9fd294504aa48794bca5f03e986110739b1577aa811125cbd"),
    "quantangshi/poet.tang.22000.json": (557450, "d7e7efe3f67415455ae93974a5aa67427e99f6713fde27920bfb657ad3204c4a"),
    "quantangshi/poet.tang.23000.json": (444324, "220a535a762349ec1beed00f1dc11293ccefc70bda15c5258bbcab208b14337f"),
    "quantangshi/poet.tang.24000.json": (462622, "2f40a4ec0e4469c29f0f028d7a4ad73b83850aa271be9b63ea0c08de6e094dee"),
    "quantangshi/poet.tang.25000.json": (410976, "7e7c00ba3f7a95e97de5440f85affa9d54b420d31995b449e97a3e9ea00259f5"),
    "quantangshi/poet.tang.26000.json": (392620, "74b5bed25622da1611928fdb31297fafadaf2876ce32ddb0c8b6d12d772979f4"),
    "quantangshi/poet.tang.27000.json": (373469, "11626fcc310bbbcc601f7c8c4d8a664cef4907076cd7ec4f16268ee5b921ba44"),
    "quantangshi/poet.tang.28000.json": (402527, "86a15affa95859046f869ffd4850886250d1a181e5151b1f096f728fb2d67502"),
    "quantangshi/poet.tang.29000.json": (432343, "e1a0cffe17b4f109399db38f2b23f9b6668b8ca1c3c24e36d5cbe4f40a925862"),
    "quantangshi/poet.tang.30000.json": (394062, "e71996f771d15476bae48751081b473b381774b5d335f6163b183f70a2eaed01"),
    "quantangshi/poet.tang.31000.json": (406846, "f1efaf172d4f6fa9aaacfa4160feb766189989c3264da6ce3a6d64a7c97097bb"),
    "quantangshi/poet.tang.32000.json": (417563, "fcb2096245719199249ad23e75eac6997b5a4341564dd1cf73ce8008975b3d74"),
    "quantangshi/poet.tang.33000.json": (438157, "35abb37f65817ee4630cfeb2db286832e505873c477e12f14693bcd20e920885"),
    "quantangshi/poet.tang.34000.json": (416020, "4b656a62b6a187792c96a632c7e33f443eabda8b48c4fb5dfdda72cf02003095"),
    "quantangshi/poet.tang.35000.json": (381490, "a9671b350e58b805fda88b2c17fa0bf3a05313017d28485010e6f60a69bdf945"),
    "quantangshi/poet.tang.36000.json": (393811, "1c8e71a32743b37d318bf8beb44b8809a8079011231cf3c7106e2c59f03c55b4"),
    "quantangshi/poet.tang.37000.json": (376582, "4c37d2d92ee6fdd73299ef13c91e17b9cbb11ef59d1e024254db1eceb95dc7ae"),
    "quantangshi/poet.tang.38000.json": (400487, "08b2ce85e59eac59fe621921b62c15528e9dfb6a102994297703ad67e14aa83f"),
    "quantangshi/poet.tang.39000.json": (404803, "791d0171fe1dc88cee8424ae0281f495ed0dcdf042f97f2a3fc9b37e05e9426c"),
    "quantangshi/poet.tang.40000.json": (361783, "851d0c3cb796c7f7c63a7765e28564b2c3be3d9691c9f43f88d4d3c64034b5d8"),
    "quantangshi/poet.tang.41000.json": (376339, "3c12f59a5103e582eed9fe6ae13affddc030a31e9956efb13cb7768296ba7396"),
    "quantangshi/poet.tang.42000.json": (390623, "060026beb06028864bce48e8074e2690f92a1dc5a76ee91f98f2d62b5f02a15c"),
    "quantangshi/poet.tang.43000.json": (430665, "de5e658dccbcf0d2b38312b39a2423459b88ef893830bc145d453d82887a5753"),
    "quantangshi/poet.tang.44000.json": (400949, "8c6d550818f5390413bc58fbb3af059d3fa4a92264b1bcf84439c2b0bb043985"),
    "quantangshi/poet.tang.45000.json": (439632, "5177a4747b785f04897c36b77d5e033b11a7bcad759d1557fdb425166b8767f3"),
    "quantangshi/poet.tang.46000.json": (402034, "287e548147e6959306b74c862a1ebe43cdca39adee34e2c63ae5d3b5eaced1f5"),
    "quantangshi/poet.tang.47000.json": (389163, "8b43cce475ed43b1105a12a8bdcef32ac22dc056c5f2c616a2976a4103b5d8ac"),
    "quantangshi/poet.tang.48000.json": (323882, "8df4861e8d7bc114e91d0a5e37d193f662485cd88b8d09289cc5ac9ab243c3ed"),
    "quantangshi/poet.tang.49000.json": (402881, "418e5a082cb70c4f85ce842affec8828a53f6296882e45339c74d553fc46495e"),
    "quantangshi/poet.tang.50000.json": (609835, "894bf4e729932d2b48ba731a48075347cf55626c08ac9f30b2fe412ca9e4e895"),
    "quantangshi/poet.tang.51000.json": (549433, "9bd1b263807c5c64bca773b76d4861a49af19b76184f88260d6080bb03311928"),
    "quantangshi/poet.tang.52000.json": (561704, "1124f4b27f46bd1ffaafdda530719eddbe41858778a0a13e4557ea4eb49ffef0"),
    "quantangshi/poet.tang.53000.json": (480142, "75841062fa939e72ee12669859933c9178b88a5c5492bc9ba84d9ef7c6f1e65a"),
    "quantangshi/poet.tang.54000.json": (467600, "cd2ba326b80ff8490723ad9fb1ace812306f0e433b74268420165068b0a975ac"),
    "quantangshi/poet.tang.55000.json": (442729, "3782736dfee847958363d4adeff1236f148aff3726f2964963b17b06dad2f97b"),
    "quantangshi/poet.tang.56000.json": (470081, "274ad6e13c069e35856e53b5dee6821ad2aa9bf8b2a5f969e2eb1234fe954bca"),
    "quantangshi/poet.tang.57000.json": (234965, "e04c137b040c1a91e16614178c189d0c30a68e1d4657ea8fde8467601e3ac121"),
    "quantangshi/error/poet.tang.0.json": (159827, "ddd7cbce6273635c3e1989f6b9cb9441a2b50f764b736a34dbd649d24652f0be"),
    "quantangshi/error/poet.tang.1000.json": (
        25919,
        "fae218fc06da247443e34cf0f97839f9b0d483aac428e5d8071bc72ff1c4c309",
    ),
    "quantangshi/error/poet.tang.2000.json": (
        45951,
        "83ea2194e372daf8a2a4c554b35d0ad7d5be0dc250e2e04e9fdc3e1a51f3ef74",
    ),
    "quantangshi/error/poet.tang.3000.json": (
        12185,
        "9cbe26bc743071a34e3ec224295106f34e282df32455ac185cf79fc4ed635ca7",
    ),
    "quantangshi/error/poet.tang.4000.json": (
        31252,
        "f4b6076cdcee6f3d05f8336dabc204cae660021806a8a9c6b051598a293cc767",
    ),
    "quantangshi/error/poet.tang.5000.json": (
        25340,
        "d7dec9d7fb5c081696a61136e26a4a73a6587f8808dcaf54f0e47690a419dbde",
    ),
    "quantangshi/error/poet.tang.6000.json": (
        16175,
        "00f24a6fbf639d745f1303371bc2e57dea92e0f4fae7d45f82a570dd155d6bfb",
    ),
    "quantangshi/error/poet.tang.7000.json": (
        13383,
        "e344ce1f4a101f26e0de50a02b4fa61b1238f10032db6eb4cdf13ef2b494b35c",
    ),
    "quantangshi/error/poet.tang.8000.json": (8480, "d868cbfcd7d3d055594538ad412ec466c568dd4dde2437e67d2aae6292097482"),
    "quantangshi/error/poet.tang.9000.json": (
        18797,
        "c7c08a83872be5ae0ea8809f6fb786c3f800e677e26bbd9798a287f147ac2370",
    ),
    "quantangshi/error/poet.tang.10000.json": (
        11279,
        "b0447ade0f4ad5970083986c084b494ad9137122f7ba9ef1a54269c5de37056c",
    ),
    "quantangshi/error/poet.tang.11000.json": (
        6091,
        "c0832af9d7a0314d35e5dc3a2fa5c0873ecdb3b8781c835bc02653106e2cbe43",
    ),
    "quantangshi/error/poet.tang.12000.json": (
        11206,
        "cc9b3859c2f39dfb551c9b7dce6b7046fd9f74f4fb295a7cacb4cc64ace7652f",
    ),
    "quantangshi/error/poet.tang.13000.json": (
        13839,
        "c3092807441f5c0cdc12e21cc274994065194ca12902c29ca22d539a853786a1",
    ),
    "quantangshi/error/poet.tang.14000.json": (
        3043,
        "229a10d51390de1577fcb897687c00128feb281ae529714f1a2ec41c518e2437",
    ),
    "quantangshi/error/poet.tang.15000.json": (
        9370,
        "06e34503e38b9a3004e0d4b910f378996a40e0b713d64fbc7fb85a5f49b2c35c",
    ),
    "quantangshi/error/poet.tang.16000.json": (
        3572,
        "303a8273576a59c8111fc5326671535e46ffe92d303c697c64b188665f6039c2",
    ),
    "quantangshi/error/poet.tang.17000.json": (
        18018,
        "fb562755c1d6af07e39ba011f8e2147c90334d0519123f122a227ffc386318cb",
    ),
    "quantangshi/error/poet.tang.18000.json": (
        22751,
        "54c2966133749ca12a31afdb088caba034e272ffdf7408c09a5be019ff911e01",
    ),
    "quantangshi/error/poet.tang.19000.json": (
        18262,
        "27136fe8a7b6c35aa97829c13aeb04cc1ad4cba24d33420ec3936567aa7bae30",
    ),
    "quantangshi/error/poet.tang.20000.json": (
        21637,
        "2d52e5a9a9af390e1c9546aac35789279945f9e27ed139e01f7b6591a8178b88",
    ),
    "quantangshi/error/poet.tang.21000.json": (
        36289,
        "017dc80e59b00fec6f8c3d2e5d3c28741e9d1a6ed93bd1299529419330004abb",
    ),
    "quantangshi/error/poet.tang.22000.json": (
        14603,
        "e183e51bfdb33ddc44d564cbcfb11d6a1baa821df7a9e4b6b17ea21c1c218ece",
    ),
    "quantangshi/error/poet.tang.23000.json": (
        16747,
        "6518fd92b1c76e42a02b84a59673ca86184e0da6778a0fe0180ecaee6af374d2",
    ),
    "quantangshi/error/poet.tang.24000.json": (
        13009,
        "5da93e4c9bc7f216389cda2d2e0364bd1ca86f47a24e11fff1a49124c136595a",
    ),
    "quantangshi/error/poet.tang.25000.json": (
        22662,
        "9f8529287eb58fadb10ab543418252dfa0a930139cff06e0d549ea2f3254774e",
    ),
    "quantangshi/error/poet.tang.26000.json": (
        8771,
        "b1eb1dd5e8b33e94acd2b5b14dc995730e1f1b7140ddf009a82129c08bd4cb40",
    ),
    "quantangshi/error/poet.tang.27000.json": (
        7243,
        "ae3d679dcb9276961e7cc0bf838b8fdeec88cf63470965e76ec9d978796e5afc",
    ),
    "quantangshi/error/poet.tang.28000.json": (
        5867,
        "d220318a0cbc62ed7c3ee99cf7544be19f0bfb0c698a22628dc103131239d9d0",
    ),
    "quantangshi/error/poet.tang.29000.json": (
        11805,
        "d1720f88d42fc8b2a71b076cf775f24a5a3d2baa561452f3abc280b345902ae3",
    ),
    "quantangshi/error/poet.tang.30000.json": (
        8407,
        "aa7b3561e25e5b5b5d29587526add6f5acd93947003d99d0a76840581d121132",
    ),
    "quantangshi/error/poet.tang.31000.json": (
        13561,
        "832c217d6bb2bc4cb100a592d95d5b1c147d0bf0a21f1cc09b92c5b45b9a1dd7",
    ),
    "quantangshi/error/poet.tang.32000.json": (
        15077,
        "21b45ef72cf5c4bb2aabb45768a54410e639b426495bb24953e1851e1a8cdcb9",
    ),
    "quantangshi/error/poet.tang.33000.json": (
        45966,
        "e9c1743c54bb6a2444ca3b416f7efbebfca676c8876430a6447601b888d417e8",
    ),
    "quantangshi/error/poet.tang.34000.json": (
        17570,
        "e79dc1beb362e9d87e74bdbfffbc925a04652581d42b9d48160d539817570ecc",
    ),
    "quantangshi/error/poet.tang.35000.json": (
        16128,
        "40d1549bd2f11f93768ab04a057046a77c4e8d22ad41ed1b62642e565f2b522f",
    ),
    "quantangshi/error/poet.tang.36000.json": (
        12675,
        "b1f10f1431ced2f0ddfca635f63bea4cf09eba880a824ddfd80c3d384e12b420",
    ),
    "quantangshi/error/poet.tang.37000.json": (
        13959,
        "8d9d5efb63b76407a04a943379106362aa7244e9744b8e7bc075bd065ded95df",
    ),
    "quantangshi/error/poet.tang.38000.json": (
        11687,
        "1c07baa7a953603c4db88708910f081c0cdaaac626bc1540db5cc9f2574e42f6",
    ),
    "quantangshi/error/poet.tang.39000.json": (
        19354,
        "98dd58d8852d2b161ce27e2a6428372681a38c844fe1917947d0b20e0bd69ef9",
    ),
    "quantangshi/error/poet.tang.40000.json": (
        8226,
        "e5d66067066ed31288c018a66c578c6652f64ae4a6b1facfbabfba3ab46493cf",
    ),
    "quantangshi/error/poet.tang.41000.json": (
        9966,
        "830e0cdc7a5bdc3bba6a0f9b73fdd85a09fea9d0ca6d07b7ec6cd98bf55bd2a8",
    ),
    "quantangshi/error/poet.tang.42000.json": (
        25932,
        "86615e2f0f8e2e21c00cacd7e5e60f88d19681832b6fe5a0ea64b81ade94b931",
    ),
    "quantangshi/error/poet.tang.43000.json": (
        30697,
        "0fb7a680dca39a5f5895893ecd0965ef42657c0759d5f64b3cdd7488a53ddc5a",
    ),
    "quantangshi/error/poet.tang.44000.json": (
        5814,
        "86b51478bfa5a19f27d77f3ce295f14323ad759cd9f7d3cf472908c6aae08381",
    ),
    "quantangshi/error/poet.tang.45000.json": (
        36961,
        "207aaf56b612a58211ecb413cc71714057379b86b244edcb590c44839335a596",
    ),
    "quantangshi/error/poet.tang.46000.json": (
        27095,
        "3dbda05189a663e9e638c4ff1f8c8441a9c52a3209d65be74cb59010bb570267",
    ),
    "quantangshi/error/poet.tang.47000.json": (
        17146,
        "8701cdf584b57bf6d5bc70d73940c3573358d2cff5caf58ad3f5b1c2c75bcbd5",
    ),
    "quantangshi/error/poet.tang.48000.json": (
        184730,
        "9e399cdece262d78d3fafde604277fc2581bbf848955b9a41b51bc97a3628db3",
    ),
    "quantangshi/error/poet.tang.49000.json": (
        26973,
        "378d2ced12f80213afacf029803936ac31e4a771436643055fe70d881e3270e9",
    ),
    "quantangshi/error/poet.tang.50000.json": (
        1000177,
        "893595ea733ab4288b4c4392cbd6887ee4102f9e8839fad53db633a11b2cc2a0",
    ),
    "quantangshi/error/poet.tang.51000.json": (
        905018,
        "2570757906f3c5844257647843a68b256f0d7f789637cef98d98dae8186c736a",
    ),
    "quantangshi/error/poet.tang.52000.json": (
        1000628,
        "2b845f812468d7005afcd6af33e58e22889b58a925062e7b4e6a360a1067ea47",
    ),
    "quantangshi/error/poet.tang.53000.json": (
        799636,
        "3188c086594e6649413340d314e9fb51216690853bcdcbfe8e5451fe84a007f1",
    ),
    "quantangshi/error/poet.tang.54000.json": (
        805466,
        "feaa67c4849e0eba1ccad76d1a6b5b6e92ed5a2c7c319a6ab17697fd8e84fa51",
    ),
    "quantangshi/error/poet.tang.55000.json": (
        654437,
        "b161d0713bb7015c713ce4a9f97b3f2ecffb065cf8135ca8e3812b4708469f6f",
    ),
    "quantangshi/error/poet.tang.56000.json": (
        739135,
        "5c9894f9dd9be4a2730e4b7aa68170fc50e6ecdb2343098e875e1e323342e2f1",
    ),
    "quantangshi/error/poet.tang.57000.json": (
        186353,
        "cb10a80df8bffbc0f5efd082ba9a3a7f41c1802a1626f66854f171624fee68c7",
    ),
}
